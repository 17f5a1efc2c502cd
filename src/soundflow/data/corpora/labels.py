"""Corpus labels -> the project's event types (soundflow.data.events.EVENT_TYPES).

AudioSet and FSD50K label clips with AudioSet ontology ids (MIDs); ESC-50 with its 50 category names.
Only labels that mean the event type without doubt are mapped: "Cough" is left out (one cough is
`single_cough`, to be ignored; a fit is `coughing_fit`, to be answered: the label cannot tell), as are
"Alarm clock", "Beep, bleep", "Microwave oven", "Whistle" and "Chime". A clip gets an event type when
its labels map to exactly one type and it carries no speech or music label (a dog barking under
someone talking is no clean foreground event); the other clips are imported with their labels and
no event type.
"""
from __future__ import annotations

AUDIOSET_EVENTS: dict[str, str] = {
    "/m/01y3hg": "smoke_alarm",  # Smoke detector, smoke alarm
    "/m/0c3f7m": "smoke_alarm",  # Fire alarm
    "/m/03kmc9": "siren",  # Siren
    "/m/0dgbq": "siren",  # Civil defense siren
    "/m/04qvtq": "siren",  # Police car (siren)
    "/m/012n7d": "siren",  # Ambulance (siren)
    "/m/012ndj": "siren",  # Fire engine, fire truck (siren)
    "/m/07rn7sz": "glass_break",  # Shatter
    "/m/07pjjrj": "crash",  # Smash, crash
    "/t/dd00002": "baby_cry",  # Baby cry, infant cry
    "/m/07pp8cl": "phone_ring",  # Telephone bell ringing
    "/m/01hnzm": "phone_ring",  # Ringtone
    "/m/0912c9": "car_horn",  # Vehicle horn, car horn, honking
    "/m/03wwcy": "doorbell",  # Doorbell
    "/m/07r67yg": "doorbell",  # Ding-dong
    "/m/07qjznt": "clock_tick",  # Tick
    "/m/07qjznl": "clock_tick",  # Tick-tock
    "/m/07r4wb8": "door_knock",  # Knock
    "/m/04brg2": "dish_clink",  # Dishes, pots, and pans
    "/m/02x984l": "fan_hum",  # Mechanical fan
    "/m/0316dw": "typing",  # Typing
    "/m/01m2v": "typing",  # Computer keyboard
    "/m/07r5v4s": "water_drip",  # Drip
    "/m/06mb1": "rain",  # Rain
    "/t/dd00038": "rain",  # Rain on surface
    "/m/03m9d0z": "wind",  # Wind
    "/m/020bb7": "birdsong",  # Bird vocalization, bird call, song
    "/m/07pggtn": "birdsong",  # Chirp, tweet
    "/m/05tny_": "dog_bark",  # Bark
    "/m/07pbtc8": "footsteps",  # Walk, footsteps
    "/m/03w41f": "bell",  # Church bell
}

# Speech and music labels: a clip with one of these is not a clean sound event.
CONFLICTS = frozenset({
    "/m/09x0r", "/m/05zppz", "/m/02zsn", "/m/0ytgt", "/m/01h8n0", "/m/02qldy", "/m/0261r1",  # speech
    "/m/015lz1", "/m/04rlf", "/m/04szw",  # singing, music, musical instrument
})

ESC50_EVENTS: dict[str, str] = {
    "dog": "dog_bark", "rain": "rain", "chirping_birds": "birdsong", "water_drops": "water_drip",
    "wind": "wind", "crying_baby": "baby_cry", "footsteps": "footsteps", "door_wood_knock": "door_knock",
    "keyboard_typing": "typing", "clock_tick": "clock_tick", "glass_breaking": "glass_break",
    "siren": "siren", "car_horn": "car_horn", "church_bells": "bell",
}


def event_for_mids(mids: list[str]) -> str | None:
    """The one event type AudioSet ontology ids map to, or None (none, several, or speech/music present)."""
    if CONFLICTS.intersection(mids):
        return None
    types = {AUDIOSET_EVENTS[m] for m in mids if m in AUDIOSET_EVENTS}
    return types.pop() if len(types) == 1 else None
