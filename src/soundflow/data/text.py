"""Text targets of the StreamAudio-mini corpus: templated grammars and small knowledge tables.

Every prompt and reply is made here, so it is correct by construction.

Conventions (so a TTS reading and the reference agree and WER needs no normaliser):
English is lowercase words separated by single spaces, no punctuation, numbers written as
words ("three hundred five", no "and"). Chinese is simplified characters with no spaces,
no punctuation and numbers in Chinese characters. Replies are short so a tiny model can
learn them. Every random function takes a ``numpy.random.Generator`` and is deterministic
given it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import product

import numpy as np

# ---------------------------------------------------------------------------
# numbers

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ZH_DIGITS = "零一二三四五六七八九"


def _check_number(n, key: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 9999:
        raise ValueError(f"{key} must be an integer in 0..9999, got {n!r}")
    return int(n)


def number_words(n: int) -> str:
    """English words for 0..9999 without "and": 305 -> "three hundred five"."""
    n = _check_number(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        head = _ONES[n // 100] + " hundred"
        return head if n % 100 == 0 else head + " " + number_words(n % 100)
    head = number_words(n // 1000) + " thousand"
    return head if n % 1000 == 0 else head + " " + number_words(n % 1000)


def zh_number(n: int) -> str:
    """Chinese numeral for 0..9999: 105 -> 一百零五, 12 -> 十二, 2000 -> 两千."""
    n = _check_number(n)
    if n == 0:
        return "零"
    digits = (n // 1000, n // 100 % 10, n // 10 % 10, n % 10)
    out, zero_pending = "", False
    for d, unit in zip(digits, ("千", "百", "十", "")):
        if d == 0:
            zero_pending = bool(out)  # one 零 marks a gap inside the number
            continue
        if zero_pending:
            out, zero_pending = out + "零", False
        out += ("两" if d == 2 and unit == "千" else _ZH_DIGITS[d]) + unit
    # 10..19 are read 十, 十一 ... without a leading 一
    return out[1:] if out.startswith("一十") else out


def _zh_count(n: int) -> str:
    """Chinese numeral before a measure word: 2 is 两 (两本书), otherwise zh_number."""
    return "两" if n == 2 else zh_number(n)


# ---------------------------------------------------------------------------
# tiny helpers

def _words(text: str) -> tuple[str, ...]:
    """Table of single words from a whitespace-separated string."""
    return tuple(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    """Table of (possibly multi-word) phrases separated by ';'."""
    return tuple(" ".join(p.split()) for p in text.split(";") if p.strip())


def _pick(rng: np.random.Generator, table):
    return table[int(rng.integers(len(table)))]


_SLOT = re.compile(r"\{(\w+)\}")


def _table_name(slot: str) -> str:
    """Slots "city" and "city2" draw from the same table (distinct values)."""
    return slot.rstrip("0123456789")


def _draw_slots(rng: np.random.Generator, template: str, tables: dict) -> dict:
    """One value per slot in order of appearance; a table is never used twice in a sentence."""
    values, used = {}, {}
    for slot in _SLOT.findall(template):
        if slot in values or slot.endswith("_mw"):
            continue
        name = _table_name(slot)
        taken = used.setdefault(name, set())
        free = [i for i in range(len(tables[name])) if i not in taken]
        i = free[int(rng.integers(len(free)))]
        taken.add(i)
        values[slot] = tables[name][i]
    return values


def _fill(template: str, values: dict) -> str:
    return _SLOT.sub(lambda m: values[m.group(1)], template)


# ---------------------------------------------------------------------------
# ASR sentences: everyday topics

_ORDINALS = _words(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth")
_ORDINALS += tuple(f"twenty {o}" for o in _ORDINALS[:9]) + ("thirtieth", "thirty first")

DAYS = _words("monday tuesday wednesday thursday friday saturday sunday")
MONTHS = _words("january february march april may june july august september october "
                "november december")


def _clock_phrases() -> tuple[str, ...]:
    minutes = ("o clock", "fifteen", "thirty", "forty five")
    return tuple(f"{number_words(h)} {m}" for h in range(1, 13) for m in minutes)


_ASR_SLOTS: dict[str, tuple[str, ...]] = {
    "name": _words(
        "anna ben carlos diana emma felix grace henry isabel jack kate leo maria nina oscar "
        "paul rosa sam tom lucy mike sara peter olivia james linda omar priya wei yuki ahmed "
        "elena hugo ivan julia karl laura noah ruth simon tina victor zoe adam bella chris "
        "daniel ella frank george helen ian jane kevin lisa martin nora owen rachel sofia "
        "thomas uma walter xavier yasmin amir chloe"),
    "city": _phrases(
        "london; paris; berlin; madrid; rome; tokyo; beijing; shanghai; sydney; toronto; "
        "chicago; boston; dublin; vienna; prague; lisbon; athens; cairo; nairobi; mumbai; "
        "delhi; seoul; bangkok; moscow; oslo; stockholm; helsinki; warsaw; budapest; "
        "amsterdam; brussels; geneva; munich; milan; venice; barcelona; seattle; denver; "
        "houston; miami; new york; los angeles; san francisco; hong kong; cape town; "
        "buenos aires; mexico city"),
    "country": _phrases(
        "france; germany; spain; italy; japan; china; india; brazil; canada; mexico; egypt; "
        "kenya; norway; sweden; finland; denmark; poland; ireland; austria; hungary; greece; "
        "portugal; turkey; morocco; peru; chile; argentina; colombia; thailand; vietnam; "
        "australia; iceland; scotland; wales; switzerland; belgium; new zealand; "
        "south africa; south korea"),
    "fruit_pl": _words(
        "apples bananas oranges grapes strawberries pears peaches plums cherries mangoes "
        "lemons limes pineapples watermelons blueberries raspberries apricots kiwis figs "
        "melons coconuts tangerines"),
    "veg_pl": _phrases(
        "carrots; potatoes; onions; tomatoes; peppers; cucumbers; mushrooms; beans; peas; "
        "olives; cabbages; radishes; leeks; courgettes; aubergines; turnips; parsnips; "
        "sweet potatoes; spring onions; green beans"),
    "dish": _phrases(
        "soup; pasta; pizza; curry; salad; noodles; rice; dumplings; pancakes; omelettes; "
        "stew; risotto; lasagne; sushi; tacos; burritos; porridge; sandwiches; burgers; "
        "chips; fried rice; roast chicken; fish pie; vegetable soup; tomato soup; apple pie; "
        "chocolate cake; beef stew; chicken curry; mashed potatoes; scrambled eggs; "
        "grilled fish"),
    "ingredient": _phrases(
        "flour; sugar; salt; butter; cheese; milk; cream; yoghurt; honey; jam; bread; oats; "
        "garlic; ginger; vinegar; chocolate; coffee; tea; olive oil; brown sugar; soy sauce; "
        "mustard; ketchup; lentils"),
    "spice": _words("salt pepper cinnamon nutmeg paprika cumin oregano basil thyme rosemary "
                    "chilli turmeric"),
    "baked": _phrases("bread; cake; cookies; muffins; pie; biscuits; scones; croissants; "
                      "banana bread"),
    "object": _phrases(
        "lamp; clock; mirror; kettle; toaster; fridge; microwave; oven; heater; radio; "
        "television; laptop; printer; blender; iron; umbrella; ladder; bucket; broom; towel; "
        "pillow; blanket; curtain; candle; vase; basket; drawer; cupboard; doorbell; "
        "dishwasher; freezer; washing machine; coffee machine; remote control; light switch; "
        "smoke detector; vacuum cleaner; ceiling fan; alarm clock"),
    "room": _phrases("kitchen; bedroom; bathroom; garage; attic; basement; hallway; office; "
                     "living room; dining room; spare room; laundry room; guest room"),
    "furniture": _phrases("sofa; table; chair; desk; bed; bookshelf; wardrobe; armchair; "
                          "bench; stool; dresser; cabinet; rug; coffee table; dining table"),
    "chore": _phrases(
        "wash the dishes; take out the rubbish; water the plants; feed the cat; walk the dog; "
        "clean the windows; vacuum the carpet; mop the floor; fold the laundry; make the bed; "
        "lock the back door; turn off the oven; close the windows; empty the bin; "
        "iron the shirts; dust the shelves; sweep the porch; mow the lawn; change the sheets; "
        "defrost the freezer; tidy the garage"),
    "clothing": _words("shirt jacket coat sweater dress skirt scarf hat cap jumper blouse "
                       "hoodie raincoat suit tie belt waistcoat cardigan vest gown overcoat"),
    "shop": _phrases(
        "bakery; pharmacy; supermarket; butcher; florist; bookshop; market; newsagent; "
        "greengrocer; corner shop; hardware store; shoe shop; toy shop; garden centre; "
        "post office; department store; fish market; farm shop"),
    "colour": _words("red blue green yellow orange purple pink brown black white grey silver "
                     "golden beige navy turquoise maroon violet cream"),
    "size": _words("big small long short tight loose heavy bright dark plain"),
    "transport": _phrases("bus; train; tram; ferry; coach; plane; subway; night bus; "
                          "express train; early flight"),
    "nature": _phrases("river; lake; beach; forest; mountain; hill; valley; harbour; waterfall; "
                       "coast; cliffs; meadow; bay; canyon; island; pier; old bridge; "
                       "city park; botanical garden"),
    "weather_adj": _words("sunny cloudy rainy windy snowy foggy stormy warm hot cold chilly "
                          "freezing humid mild dry wet bright grey"),
    "weather_event": _phrases(
        "heavy rain; light rain; strong winds; thunderstorms; thick fog; light snow; "
        "heavy snow; hail; sunshine; scattered showers; frost; sleet; drizzle; gales"),
    "part_of_day": _words("morning afternoon evening weekend"),
    "season": _words("spring summer autumn winter"),
    "job": _phrases(
        "a nurse; a teacher; a doctor; a chef; a baker; a pilot; a farmer; a plumber; "
        "an electrician; a carpenter; a mechanic; a dentist; a lawyer; a journalist; "
        "a librarian; a cashier; a waiter; a gardener; a painter; a firefighter; "
        "a police officer; a vet; a pharmacist; an architect; an engineer; an accountant; "
        "a designer; a programmer; a scientist; a translator; a photographer; a musician; "
        "a tailor; a cleaner; a receptionist; a driver; a builder; a secretary; a manager; "
        "a surgeon"),
    "workplace": _phrases(
        "hospital; school; bank; factory; hotel; restaurant; library; airport; bakery; "
        "warehouse; museum; university; train station; city hall; post office; fire station; "
        "police station; shopping centre; law firm; garden centre"),
    "team": _phrases("sales team; design team; new clients; board; marketing team; "
                     "project manager; head office; suppliers; lawyers; builders"),
    "document": _phrases("report; presentation; budget; contract; invoice; proposal; summary; "
                         "schedule; spreadsheet; newsletter; quarterly report; project plan; "
                         "sales figures; meeting notes"),
    "subject": _phrases(
        "maths; history; geography; science; chemistry; physics; biology; music; art; "
        "english; french; spanish; german; chinese; literature; drama; economics; "
        "computer science; physical education; religious studies"),
    "learn_topic": _phrases(
        "dinosaurs; volcanoes; planets; earthquakes; pyramids; rainforests; oceans; insects; "
        "castles; pirates; robots; rivers; glaciers; electricity; magnets; the human body; "
        "the solar system; ancient rome; the moon; the weather"),
    "sport": _phrases("football; tennis; basketball; volleyball; cricket; rugby; hockey; golf; "
                      "badminton; baseball; netball; squash; handball; table tennis; "
                      "water polo"),
    "symptom": _phrases(
        "a headache; a sore throat; a fever; a cough; a cold; a stomach ache; a toothache; "
        "a rash; an earache; back pain; a runny nose; a stiff neck; a sprained ankle; "
        "chest pain; hay fever; the flu"),
    "body": _words("head neck shoulder elbow wrist hand finger knee ankle foot toe hip back "
                   "stomach chest ear eye tooth jaw throat thumb heel"),
    "animal": _words(
        "lion tiger elephant giraffe zebra monkey gorilla bear wolf fox deer rabbit squirrel "
        "hedgehog badger otter beaver kangaroo koala panda penguin seal dolphin whale shark "
        "turtle tortoise crocodile alligator hippo rhino camel llama horse donkey goat sheep "
        "cow pig hamster parrot owl eagle hawk duck goose swan frog snake lizard mouse rat"),
    "animal_action": _phrases(
        "sleeping in the shade; eating its lunch; playing with a ball; swimming in the pond; "
        "climbing a tree; rolling in the mud; chasing its tail; hiding behind a rock; "
        "drinking from the river; watching the visitors"),
    "animal_adj": _words("dangerous noisy grumpy playful aggressive restless lazy clever shy "
                         "friendly"),
    "pet": _phrases("dog; cat; rabbit; hamster; parrot; goldfish; tortoise; puppy; kitten; "
                    "guinea pig"),
    # consonant-initial on purpose: the template says "a {pet_adj} {pet}"
    "pet_adj": _words("big small tiny fluffy noisy lazy friendly young clever cheeky"),
    "pet_name": _words("max bella charlie luna rocky daisy buddy coco milo ruby biscuit "
                       "pepper shadow ginger teddy"),
    "bird": _words("robin sparrow blackbird magpie pigeon crow finch woodpecker owl parrot "
                   "heron kingfisher wren thrush"),
    "hobby": _phrases(
        "painting; fishing; gardening; knitting; cycling; hiking; swimming; reading; cooking; "
        "baking; dancing; singing; running; climbing; sewing; drawing; playing chess; "
        "playing the guitar; watching films; bird watching; doing puzzles"),
    # consonant-initial on purpose: the template says "a {genre} film"
    "genre": _phrases("comedy; horror; romance; thriller; fantasy; mystery; science fiction; "
                      "war; western; musical; detective; crime; spy; family"),
    "instrument": _words("piano guitar violin cello flute trumpet drums saxophone clarinet "
                         "harp ukulele trombone accordion harmonica banjo"),
    "plant_pl": _words("roses tulips sunflowers daisies lilies orchids daffodils tomatoes herbs "
                       "ferns cacti violets poppies peonies geraniums"),
    "feeling": _words("tired happy proud relaxed nervous excited sleepy hungry grateful lonely "
                      "calm worried cheerful exhausted confused hopeful bored annoyed"),
    "relative": _words("mother father sister brother grandmother grandfather aunt uncle cousin "
                       "niece nephew son daughter husband wife neighbour friend colleague boss "
                       "roommate"),
    "day": DAYS,
    "month": MONTHS,
    "ordinal": _ORDINALS,
    "clock": _clock_phrases(),
    "number": tuple(number_words(n) for n in range(2, 100)),
    "number_small": tuple(number_words(n) for n in range(2, 13)),
    "bake_minutes": tuple(number_words(n) for n in range(10, 65, 5)),
}
_ASR_SLOTS["produce"] = _ASR_SLOTS["fruit_pl"] + _ASR_SLOTS["veg_pl"]

# (topic, template); a topic names what the sentence is about, for summaries
ASR_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("home", "my {relative} painted the {room} {colour} last weekend"),
    ("home", "please put the {object} back in the {room}"),
    ("home", "we need a new {furniture} for the {room}"),
    ("home", "the {object} in the {room} is broken again"),
    ("home", "{name} forgot to {chore} before leaving for work"),
    ("home", "i will {chore} after dinner tonight"),
    ("weather", "it will be {weather_adj} in {city} on {day}"),
    ("weather", "the forecast says {weather_event} this {part_of_day}"),
    ("weather", "it was {number} degrees in {city} yesterday afternoon"),
    ("weather", "the {season} in {country} is usually {weather_adj}"),
    ("weather", "take your {clothing} because it looks {weather_adj} outside"),
    ("travel", "our flight to {city} leaves at {clock}"),
    ("travel", "{name} is taking the {transport} to {city} next {day}"),
    ("travel", "we stayed in a small hotel near the {nature} for {number_small} nights"),
    ("travel", "how long does it take to drive from {city} to {city2}"),
    ("travel", "i would love to visit {country} with my {relative}"),
    ("travel", "the {transport} to {city} was {number} minutes late"),
    ("shopping", "i bought {number_small} {fruit_pl} and some {ingredient} at the {shop}"),
    ("shopping", "the {clothing} i wanted costs {number} dollars"),
    ("shopping", "{name} returned the {colour} {clothing} because it was too {size}"),
    ("shopping", "is the {shop} open on {day} morning"),
    ("shopping", "we spent {number} dollars on {produce} at the market"),
    ("cooking", "first chop the {veg_pl} and then add the {ingredient}"),
    ("cooking", "my {relative} makes the best {dish} in town"),
    ("cooking", "bake the {baked} for {bake_minutes} minutes in a hot oven"),
    ("cooking", "we are having {dish} with {veg_pl} for dinner tonight"),
    ("cooking", "add a pinch of {spice} to the {dish}"),
    ("work", "{name} works as {job} at the {workplace}"),
    ("work", "the meeting with the {team} starts at {clock}"),
    ("work", "i have to finish the {document} before {day}"),
    ("work", "my {relative} just got a new job as {job}"),
    ("work", "please send the {document} to {name} by {day} afternoon"),
    ("school", "our {subject} teacher gave us a test on {day}"),
    ("school", "{name} got a very good grade in {subject}"),
    ("school", "the children are learning about {learn_topic} in class"),
    ("school", "school starts at {clock} and ends at {clock2}"),
    ("sports", "{name} plays {sport} every {day} with friends"),
    ("sports", "our team won the {sport} match by {number_small} points"),
    ("sports", "the {sport} game was cancelled because of the {weather_event}"),
    ("sports", "i run {number_small} kilometres around the {nature} every morning"),
    ("health", "i have {symptom} and need to see a doctor"),
    ("health", "my {body} has been hurting since {day}"),
    ("health", "{name} should drink more water and eat more {veg_pl}"),
    ("health", "the doctor told me to rest for {number_small} days"),
    ("animals", "the {animal} at the zoo was {animal_action}"),
    ("animals", "my {relative} has a {pet_adj} {pet} named {pet_name}"),
    ("animals", "did you see the {bird} in the garden this morning"),
    ("animals", "the {animal} can be very {animal_adj} when it is hungry"),
    ("time", "my birthday is on the {ordinal} of {month}"),
    ("time", "the train leaves at {clock} on {day}"),
    ("time", "we will meet again on {day} the {ordinal} of {month}"),
    ("time", "the shop closes at {clock} on weekdays"),
    ("time", "it is already {clock} and {name} is still not here"),
    ("time", "the concert is on the {ordinal} of {month} at {clock}"),
    ("hobbies", "{name} loves {hobby} on quiet weekend afternoons"),
    ("hobbies", "we watched a {genre} film at the cinema last night"),
    ("hobbies", "my {relative} is learning to play the {instrument}"),
    ("hobbies", "i read a great book about {learn_topic} last week"),
    ("nature", "the {plant_pl} in our garden need more water"),
    ("nature", "we sat by the {nature} until the sun went down"),
    ("nature", "{name} took photos of the {plant_pl} in the park"),
    ("family", "{name} and {name2} are getting married in {month}"),
    ("family", "i am going to visit my {relative} in {city} this weekend"),
    ("family", "{name} felt very {feeling} after the long day"),
)

# how a summary names each topic
TOPICS: dict[str, str] = {
    "home": "your home", "weather": "the weather", "travel": "travel",
    "shopping": "shopping", "cooking": "cooking", "work": "work", "school": "school",
    "sports": "sports", "health": "health", "animals": "animals",
    "time": "dates and times", "hobbies": "hobbies", "nature": "nature",
    "family": "family and friends",
}


def asr_sentence(rng: np.random.Generator, topic: str | None = None) -> str:
    """An everyday sentence of 5-14 words; `topic` (a TOPICS key) restricts the templates."""
    if topic is not None and topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; expected one of {sorted(TOPICS)}")
    templates = [t for tp, t in ASR_TEMPLATES if topic is None or tp == topic]
    template = _pick(rng, templates)
    return _fill(template, _draw_slots(rng, template, _ASR_SLOTS))


def asr_long_passage(rng: np.random.Generator, n_sentences: int) -> list[str]:
    """Sentences for long-form ASR; no sentence repeats the one before it."""
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be >= 1, got {n_sentences!r}")
    out: list[str] = []
    while len(out) < n_sentences:
        s = asr_sentence(rng)
        if not out or s != out[-1]:
            out.append(s)
    return out


@cache
def asr_vocabulary() -> frozenset[str]:
    """Every word asr_sentence can produce."""
    vocab: set[str] = set()
    for _, template in ASR_TEMPLATES:
        vocab.update(_SLOT.sub(" ", template).split())
        for slot in _SLOT.findall(template):
            for phrase in _ASR_SLOTS[_table_name(slot)]:
                vocab.update(phrase.split())
    return frozenset(vocab)


@cache
def _topic_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """One regex per ASR template, slots matched against their tables."""
    def slot_regex(m: re.Match) -> str:
        table = sorted(_ASR_SLOTS[_table_name(m.group(1))], key=len, reverse=True)
        return "(?:" + "|".join(re.escape(p) for p in table) + ")"
    return tuple((topic, re.compile(_SLOT.sub(slot_regex, template)))
                 for topic, template in ASR_TEMPLATES)


def sentence_topic(sentence: str) -> str:
    """The topic of a sentence made by asr_sentence (ValueError for any other sentence)."""
    for topic, pattern in _topic_patterns():
        if pattern.fullmatch(sentence):
            return topic
    raise ValueError(f"sentence was not made by asr_sentence: {sentence!r}")


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else " ".join(items[:-1]) + " and " + items[-1]


def summarize(sentences: list[str]) -> str:
    """Extractive summary naming the topics in order of first mention:
    "you talked about the weather and cooking"."""
    if not sentences:
        raise ValueError("sentences must not be empty")
    topics: list[str] = []
    for s in sentences:
        phrase = TOPICS[sentence_topic(s)]
        if phrase not in topics:
            topics.append(phrase)
    return "you talked about " + _join_and(topics)


# ---------------------------------------------------------------------------
# parallel en/zh sentences


def _pairs(text: str) -> tuple[tuple[str, ...], ...]:
    """Aligned slot table from "en=zh" or "en=zh=measure word" entries separated by ';'."""
    return tuple(tuple(" ".join(field.split()) for field in entry.split("="))
                 for entry in text.split(";") if entry.strip())


def _counted_pairs() -> tuple[tuple[str, str], ...]:
    things = _pairs("books=书=本; pens=笔=支; cats=猫=只; dogs=狗=只; apples=苹果=个; "
                    "cars=车=辆; chairs=椅子=把; tickets=票=张; shirts=衬衫=件; bags=包=个; "
                    "cups=杯子=个; bikes=自行车=辆; flowers=花=朵; fish=鱼=条")
    return tuple((f"{number_words(n)} {en}", f"{_zh_count(n)}{mw}{zh}")
                 for n, (en, zh, mw) in product(range(2, 11), things))


def _clock_pairs(hours) -> tuple[tuple[str, str], ...]:
    out = []
    for h in hours:
        out.append((f"{number_words(h)} o clock", f"{_zh_count(h)}点"))
        out.append((f"{number_words(h)} thirty", f"{_zh_count(h)}点半"))
    return tuple(out)


_ZH_DAYS = tuple(f"星期{d}" for d in "一二三四五六日")
_P_DAYS = tuple(zip(DAYS, _ZH_DAYS))
_P_PLACE = _pairs(
    "park=公园; library=图书馆; market=市场; hospital=医院; cinema=电影院; school=学校; "
    "supermarket=超市; museum=博物馆; beach=海边; zoo=动物园; bank=银行; post office=邮局; "
    "station=车站; airport=机场")
_P_PERSON = _pairs(
    "my father=我爸爸; my mother=我妈妈; the teacher=老师; my friend=我的朋友; "
    "the boy=那个男孩; the girl=那个女孩; my sister=我姐姐; my brother=我哥哥; "
    "the old man=那位老人; our neighbour=我们的邻居")
_P_FRUITS = _pairs(
    "apples=苹果; bananas=香蕉; oranges=橙子; grapes=葡萄; strawberries=草莓; pears=梨; "
    "peaches=桃子; mangoes=芒果; watermelons=西瓜; cherries=樱桃; lemons=柠檬; "
    "pineapples=菠萝")
_P_OPENABLE = _pairs("door=门; window=窗户; box=盒子; fridge=冰箱; drawer=抽屉; gate=大门")

_PARALLEL_SLOTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "fruits": _P_FRUITS,
    "fruit": _pairs("apple=苹果; orange=橙子; pear=梨; peach=桃子; mango=芒果; lemon=柠檬; "
                    "watermelon=西瓜; pineapple=菠萝"),
    "taste": _pairs("sweet=甜; sour=酸; fresh=新鲜; big=大; small=小; expensive=贵; "
                    "cheap=便宜"),
    "relative": _pairs("mother=妈妈; father=爸爸; brother=哥哥; sister=姐姐; friend=朋友; "
                       "neighbour=邻居; uncle=叔叔; aunt=阿姨; grandmother=奶奶; "
                       "grandfather=爷爷"),
    "job": _pairs("a teacher=老师; a doctor=医生; a nurse=护士; a cook=厨师; a driver=司机; "
                  "a farmer=农民; an engineer=工程师; a police officer=警察; a lawyer=律师; "
                  "a student=学生; a singer=歌手; a writer=作家; a pilot=飞行员; "
                  "a dentist=牙医"),
    "weather": _pairs("it is sunny=天气晴朗; it is raining=在下雨; it is snowing=在下雪; "
                      "it is windy=风很大; it is cold=很冷; it is hot=很热; it is cloudy=多云"),
    "city": _pairs("beijing=北京; shanghai=上海; london=伦敦; paris=巴黎; tokyo=东京; "
                   "new york=纽约; berlin=柏林; moscow=莫斯科; sydney=悉尼; rome=罗马; "
                   "hong kong=香港; guangzhou=广州; shenzhen=深圳; madrid=马德里; cairo=开罗"),
    "drink": _pairs("water=水; tea=茶; coffee=咖啡; milk=牛奶; orange juice=橙汁; "
                    "hot water=热水; green tea=绿茶; apple juice=苹果汁"),
    "place": _P_PLACE,
    "day": _P_DAYS,
    "month": tuple((m, f"{zh_number(i)}月") for i, m in enumerate(MONTHS, start=1)),
    "counted": _counted_pairs(),
    "cloth": _pairs("shirt=衬衫=件; coat=外套=件; dress=裙子=条; hat=帽子=顶; "
                    "sweater=毛衣=件; scarf=围巾=条; jacket=夹克=件; bag=包=个"),
    # one-character colours go straight before the noun: 红衬衫
    "colour": _pairs("red=红; blue=蓝; white=白; black=黑; green=绿; yellow=黄"),
    "room": _pairs("kitchen=厨房; bedroom=卧室; living room=客厅; bathroom=浴室; "
                   "classroom=教室; office=办公室; hotel room=酒店房间"),
    "room_adj": _pairs("clean=干净; big=大; small=小; quiet=安静; warm=暖和; bright=明亮; "
                       "cold=冷; dirty=脏"),
    "openable": _P_OPENABLE,
    "person": _P_PERSON,
    "activity": _pairs(
        "reading a book=看书; cooking dinner=做晚饭; watching tv=看电视; "
        "playing football=踢足球; sleeping=睡觉; writing a letter=写信; singing=唱歌; "
        "drawing a picture=画画; swimming=游泳; washing the dishes=洗碗; "
        "doing homework=做作业; listening to music=听音乐; cleaning the room=打扫房间"),
    "clock": _clock_pairs(range(1, 13)),
    "morning": _clock_pairs(range(5, 10)),
    "country": _pairs("china=中国; japan=日本; france=法国; germany=德国; italy=意大利; "
                      "spain=西班牙; canada=加拿大; australia=澳大利亚; brazil=巴西; "
                      "egypt=埃及; india=印度; russia=俄罗斯; britain=英国; "
                      "south korea=韩国; thailand=泰国; mexico=墨西哥"),
    "animal": _pairs("dog=狗=只; cat=猫=只; bird=鸟=只; horse=马=匹; cow=牛=头; "
                     "rabbit=兔子=只; duck=鸭子=只; pig=猪=头"),
    "animal_action": _pairs("sleeping=睡觉; eating=吃东西; playing=玩; resting=休息"),
    "item": _pairs("book=书=本; shirt=衬衫=件; bag=包=个; umbrella=雨伞=把; cup=杯子=个; "
                   "pen=笔=支; hat=帽子=顶; watch=手表=块; lamp=灯=盏; ticket=票=张"),
    "yuan": tuple((number_words(n), zh_number(n)) for n in range(3, 100)),
    "age": tuple((number_words(n), zh_number(n)) for n in range(3, 91)),
    "minutes": tuple((number_words(n), zh_number(n)) for n in range(3, 61)),
    "body": _pairs("head=头; stomach=肚子; back=背; tooth=牙; leg=腿; throat=嗓子; eye=眼睛; "
                   "ear=耳朵; foot=脚; arm=胳膊"),
    "thing": _pairs("book=书; phone=手机; cup=杯子; bag=包; key=钥匙; pen=笔; "
                    "remote control=遥控器; wallet=钱包"),
    "furniture": _pairs("table=桌子; chair=椅子; bed=床; sofa=沙发; shelf=架子; desk=书桌"),
    "late": _pairs("bus=公交车; train=火车; plane=飞机; ferry=渡轮; flight=航班"),
    "commute": _pairs("by bus=坐公交车; by bike=骑自行车; by car=开车; by subway=坐地铁; "
                      "by train=坐火车; by taxi=坐出租车; on foot=走路"),
    "device": _pairs("light=灯; tv=电视; fan=风扇; radio=收音机; computer=电脑; "
                     "air conditioner=空调; heater=暖气"),
    "when": _pairs("tomorrow=明天; tonight=今晚; next week=下周")
    + tuple((f"on {d}", z) for d, z in _P_DAYS),
    "hobby": _pairs("read books=看书; play football=踢足球; swim=游泳; sing=唱歌; dance=跳舞; "
                    "cook=做饭; paint=画画; play the piano=弹钢琴; ride a bike=骑自行车; "
                    "watch movies=看电影; play chess=下棋"),
    "language": _pairs("chinese=中文; english=英语; french=法语; japanese=日语; "
                       "spanish=西班牙语; german=德语; korean=韩语; russian=俄语"),
    "dish": _pairs("noodles=面条; rice=米饭; dumplings=饺子; soup=汤; bread=面包; "
                   "pizza=披萨; fried rice=炒饭; salad=沙拉; fish=鱼"),
    "grocery": _pairs("rice=米; milk=牛奶; eggs=鸡蛋; bread=面包; sugar=糖; salt=盐; "
                      "vegetables=蔬菜; meat=肉; fruit=水果"),
}

# (English template, Chinese template); "{x_mw}" is the measure word of slot x
PARALLEL_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("i like to eat {fruits}", "我喜欢吃{fruits}"),
    ("do you like {fruits}", "你喜欢{fruits}吗"),
    ("this {fruit} is very {taste}", "这个{fruit}很{taste}"),
    ("my {relative} is {job}", "我的{relative}是{job}"),
    ("my {relative} lives in {city}", "我的{relative}住在{city}"),
    ("{weather} in {city} today", "今天{city}{weather}"),
    ("i want to drink {drink}", "我想喝{drink}"),
    ("we go to the {place} on {day}", "我们{day}去{place}"),
    ("where is the {place}", "{place}在哪里"),
    ("the {place} is {minutes} minutes away on foot", "走路去{place}要{minutes}分钟"),
    ("i have {counted}", "我有{counted}"),
    ("there are {counted} on the table", "桌子上有{counted}"),
    ("i bought a {colour} {cloth} yesterday", "我昨天买了一{cloth_mw}{colour}{cloth}"),
    ("the {room} is very {room_adj}", "{room}很{room_adj}"),
    ("please open the {openable}", "请打开{openable}"),
    ("please close the {openable}", "请关上{openable}"),
    ("{person} is {activity}", "{person}在{activity}"),
    ("the meeting starts at {clock}", "会议{clock}开始"),
    ("i usually get up at {morning}", "我通常{morning}起床"),
    ("i want to visit {country} next year", "我明年想去{country}"),
    ("the {animal} is {animal_action} in the garden", "那{animal_mw}{animal}在花园里{animal_action}"),
    ("this {item} costs {yuan} yuan", "这{item_mw}{item}{yuan}块钱"),
    ("i am {age} years old", "我{age}岁"),
    ("my {body} hurts a lot", "我{body}很疼"),
    ("the {thing} is on the {furniture}", "{thing}在{furniture}上"),
    ("the {late} is late again", "{late}又晚点了"),
    ("i go to work {commute}", "我{commute}去上班"),
    ("please turn on the {device}", "请打开{device}"),
    ("please turn off the {device}", "请关掉{device}"),
    ("i will see you {when}", "我们{when}见"),
    ("{person} likes to {hobby}", "{person}喜欢{hobby}"),
    ("{person} can speak {language}", "{person}会说{language}"),
    ("i am hungry let us eat {dish}", "我饿了我们吃{dish}吧"),
    ("i need to buy some {grocery} today", "我今天需要买{grocery}"),
    ("my birthday is in {month}", "我的生日在{month}"),
    ("i think today is {day}", "我觉得今天是{day}"),
)


def parallel_sentence(rng: np.random.Generator) -> tuple[str, str]:
    """An (english, chinese) pair; the Chinese is a translation of the English."""
    en_t, zh_t = _pick(rng, PARALLEL_TEMPLATES)
    values = _draw_slots(rng, en_t, _PARALLEL_SLOTS)
    en = _fill(en_t, {k: v[0] for k, v in values.items()})
    zh_values = {k: v[1] for k, v in values.items()}
    zh_values.update({f"{k}_mw": v[2] for k, v in values.items() if len(v) > 2})
    return en, _fill(zh_t, zh_values)


# ---------------------------------------------------------------------------
# knowledge questions


@dataclass(frozen=True)
class QA:
    """One turn: the user's question and the assistant's full short reply.
    `depends_on` is the index of an earlier turn this one needs (multi-turn dialogs)."""

    question: str
    answer: str
    depends_on: int | None = None


def _capital_facts() -> list[QA]:
    table = _pairs(
        "france=paris; germany=berlin; italy=rome; spain=madrid; japan=tokyo; china=beijing; "
        "russia=moscow; egypt=cairo; canada=ottawa; australia=canberra; brazil=brasilia; "
        "india=new delhi; mexico=mexico city; the united kingdom=london; "
        "the united states=washington; kenya=nairobi; greece=athens; portugal=lisbon; "
        "norway=oslo; sweden=stockholm; finland=helsinki; denmark=copenhagen; poland=warsaw; "
        "ireland=dublin; austria=vienna; hungary=budapest; thailand=bangkok; "
        "south korea=seoul; argentina=buenos aires; peru=lima; turkey=ankara; "
        "belgium=brussels; cuba=havana; iceland=reykjavik; new zealand=wellington; "
        "ghana=accra; iran=tehran; iraq=baghdad; nigeria=abuja; vietnam=hanoi")
    return [QA(f"what is the capital of {c}", f"the capital of {c} is {cap}")
            for c, cap in table]


def _animal_sound_facts() -> list[QA]:
    table = _pairs(
        "a cow=moo; a dog=woof; a cat=meow; a sheep=baa; a pig=oink; a duck=quack; "
        "a horse=neigh; a snake=hiss; a lion=roar; an owl=hoot; a mouse=squeak; a frog=croak; "
        "a bee=buzz; a hen=cluck; a donkey=hee haw; a crow=caw; a dove=coo")
    return [QA(f"what sound does {a} make", f"{a} says {s}") for a, s in table]


def _colour_facts() -> list[QA]:
    table = _pairs(
        "the sky=blue; grass=green; snow=white; a banana=yellow; coal=black; a carrot=orange; "
        "milk=white; a ripe tomato=red; a strawberry=red; chocolate=brown; a lemon=yellow; "
        "a lime=green; a pumpkin=orange; a polar bear=white; a crow=black; a flamingo=pink; "
        "an eggplant=purple; a fire engine=red; a school bus=yellow; a zebra=black and white")
    return [QA(f"what colour is {x}", f"{x} is {c}") for x, c in table]


def _opposite_facts() -> list[QA]:
    table = _pairs(
        "hot=cold; cold=hot; up=down; down=up; day=night; night=day; fast=slow; slow=fast; "
        "happy=sad; wet=dry; dry=wet; full=empty; empty=full; early=late; first=last; "
        "left=right; in=out; inside=outside; push=pull; pull=push; buy=sell; sell=buy; "
        "rich=poor; thick=thin; tall=short; black=white; white=black; north=south; "
        "south=north; east=west; west=east; asleep=awake; awake=asleep; above=below; "
        "top=bottom; always=never; never=always; clean=dirty; dirty=clean; strong=weak; "
        "cheap=expensive; expensive=cheap; true=false; summer=winter; winter=summer")
    return [QA(f"what is the opposite of {a}", f"the opposite of {a} is {b}") for a, b in table]


def _calendar_facts() -> list[QA]:
    out = []
    for i, d in enumerate(DAYS):
        nxt, prev = DAYS[(i + 1) % 7], DAYS[i - 1]
        out.append(QA(f"what day comes after {d}", f"the day after {d} is {nxt}"))
        out.append(QA(f"what day comes before {d}", f"the day before {d} is {prev}"))
    for i, m in enumerate(MONTHS):
        nxt = MONTHS[(i + 1) % 12]
        out.append(QA(f"what month comes after {m}", f"the month after {m} is {nxt}"))
    seasons = _ASR_SLOTS["season"]
    for i, s in enumerate(seasons):
        out.append(QA(f"what season comes after {s}", f"{seasons[(i + 1) % 4]} comes after {s}"))
    return out


def _table_facts() -> list[QA]:
    """Facts written out as (question, answer) pairs."""
    rows = """
    which planet is closest to the sun=mercury is closest to the sun;
    which planet is the largest=jupiter is the largest planet;
    which planet do we live on=we live on the planet earth;
    which planet is called the red planet=mars is called the red planet;
    which planet has the biggest rings=saturn has the biggest rings;
    which planet is farthest from the sun=neptune is farthest from the sun;
    which planet is the hottest=venus is the hottest planet;
    how many planets are in the solar system=there are eight planets in the solar system;
    what do you use to see=you see with your eyes;
    what do you use to hear=you hear with your ears;
    what do you use to smell=you smell with your nose;
    what do you use to taste=you taste with your tongue;
    what do you use to chew food=you chew food with your teeth;
    what do you use to think=you think with your brain;
    what do you use to breathe=you breathe with your lungs;
    what pumps blood around the body=the heart pumps blood around the body;
    how many fingers are on one hand=there are five fingers on one hand;
    how many teeth does an adult usually have=an adult usually has thirty two teeth;
    how many legs does a spider have=a spider has eight legs;
    how many legs does a dog have=a dog has four legs;
    how many legs does a bird have=a bird has two legs;
    how many legs does an insect have=an insect has six legs;
    how many legs does an ant have=an ant has six legs;
    how many legs does a horse have=a horse has four legs;
    how many arms does an octopus have=an octopus has eight arms;
    how many legs does a chicken have=a chicken has two legs;
    how many legs does a snake have=a snake has no legs;
    how many arms does a starfish usually have=a starfish usually has five arms;
    what is a baby dog called=a baby dog is called a puppy;
    what is a baby cat called=a baby cat is called a kitten;
    what is a baby cow called=a baby cow is called a calf;
    what is a baby sheep called=a baby sheep is called a lamb;
    what is a baby horse called=a baby horse is called a foal;
    what is a baby frog called=a baby frog is called a tadpole;
    what is a baby duck called=a baby duck is called a duckling;
    what is a baby bear called=a baby bear is called a cub;
    what is a baby goat called=a baby goat is called a kid;
    what is a baby kangaroo called=a baby kangaroo is called a joey;
    what is a baby pig called=a baby pig is called a piglet;
    what is a baby hen called=a baby hen is called a chick;
    how many days are in a week=there are seven days in a week;
    how many months are in a year=there are twelve months in a year;
    how many hours are in a day=there are twenty four hours in a day;
    how many minutes are in an hour=there are sixty minutes in an hour;
    how many seconds are in a minute=there are sixty seconds in a minute;
    how many days are in a year=there are three hundred sixty five days in a year;
    how many days are in a leap year=there are three hundred sixty six days in a leap year;
    how many weeks are in a year=there are fifty two weeks in a year;
    what do bees make=bees make honey;
    what do cows give us=cows give us milk;
    what do hens lay=hens lay eggs;
    where do fish live=fish live in water;
    what is frozen water called=frozen water is called ice;
    what gas do we need to breathe=we need oxygen to breathe;
    what is the largest ocean=the pacific is the largest ocean;
    what is the tallest mountain=mount everest is the tallest mountain;
    where does the sun rise=the sun rises in the east;
    where does the sun set=the sun sets in the west;
    how many colours are in a rainbow=there are seven colours in a rainbow;
    at what temperature does water boil=water boils at one hundred degrees celsius;
    at what temperature does water freeze=water freezes at zero degrees celsius;
    what is the largest animal=the blue whale is the largest animal;
    what is the fastest land animal=the cheetah is the fastest land animal;
    what is the tallest animal=the giraffe is the tallest animal;
    what goes around the earth=the moon goes around the earth;
    how many sides does a triangle have=a triangle has three sides;
    how many sides does a square have=a square has four sides;
    how many sides does a pentagon have=a pentagon has five sides;
    how many sides does a hexagon have=a hexagon has six sides;
    how many sides does an octagon have=an octagon has eight sides;
    how many corners does a rectangle have=a rectangle has four corners;
    what shape is a ball=a ball is round;
    what colour do blue and yellow make=blue and yellow make green;
    what colour do red and yellow make=red and yellow make orange;
    what colour do red and blue make=red and blue make purple;
    what colour do red and white make=red and white make pink;
    what colour do black and white make=black and white make grey
    """
    return [QA(q, a) for q, a in _pairs(rows)]


def _tool_facts() -> list[QA]:
    table = _pairs(
        "a hammer=hitting nails; scissors=cutting paper; a saw=cutting wood; "
        "a spoon=eating soup; a broom=sweeping the floor; a pen=writing; "
        "an umbrella=keeping dry in the rain; a key=opening a lock; "
        "a ladder=reaching high places; a toothbrush=cleaning your teeth; "
        "a kettle=boiling water; an oven=baking bread; a thermometer=measuring temperature; "
        "a clock=telling the time; a shovel=digging holes; a needle=sewing clothes; "
        "a camera=taking photos; a map=finding the way; a fridge=keeping food cold; "
        "a towel=drying yourself")
    # "scissors" is plural, so it takes "are"
    return [QA(f"what {'are' if t == 'scissors' else 'is'} {t} used for",
               f"{t} {'are' if t == 'scissors' else 'is'} used for {u}") for t, u in table]


def _language_facts() -> list[QA]:
    table = _pairs(
        "spain=spanish; france=french; germany=german; italy=italian; japan=japanese; "
        "china=chinese; russia=russian; brazil=portuguese; portugal=portuguese; "
        "greece=greek; mexico=spanish; poland=polish; south korea=korean; "
        "the netherlands=dutch; sweden=swedish; turkey=turkish")
    return [QA(f"what language do people speak in {c}", f"people in {c} speak {lang}")
            for c, lang in table]


FACTS: tuple[QA, ...] = tuple(
    _capital_facts() + _animal_sound_facts() + _colour_facts() + _opposite_facts()
    + _calendar_facts() + _table_facts() + _tool_facts() + _language_facts())


def fact_question(rng: np.random.Generator) -> QA:
    """A question from the knowledge table FACTS, with its full short answer."""
    return _pick(rng, FACTS)


# ---------------------------------------------------------------------------
# computed questions


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{number_words(n)} {singular if n == 1 else plural or singular + 's'}"


def _clock_words(hour24: int) -> str:
    """Whole hour on a twelve-hour clock: 15 -> "three pm", 0 -> "twelve am"."""
    h = hour24 % 12 or 12
    return f"{number_words(h)} {'am' if hour24 % 24 < 12 else 'pm'}"


def _arithmetic(rng: np.random.Generator) -> QA:
    op = _pick(rng, ("plus", "minus", "times"))
    if op == "times":
        a, b = (int(x) for x in rng.integers(2, 13, size=2))
        r = a * b
    elif op == "plus":
        a, b = (int(x) for x in rng.integers(1, 51, size=2))
        r = a + b
    else:
        a = int(rng.integers(2, 61))
        b = int(rng.integers(1, a + 1))
        r = a - b
    expr = f"{number_words(a)} {op} {number_words(b)}"
    return QA(f"what is {expr}", f"{expr} is {number_words(r)}")


def _time_arithmetic(rng: np.random.Generator) -> QA:
    start = int(rng.integers(0, 24))
    k = int(rng.integers(1, 7))
    after = bool(rng.integers(2))
    end = (start + k) % 24 if after else (start - k) % 24
    word = "after" if after else "before"
    return QA(f"what time is it {_plural(k, 'hour')} {word} {_clock_words(start)}",
              f"it is {_clock_words(end)}")


# (big unit, small unit, small units per big unit)
_UNITS = (("hour", "minutes", 60), ("metre", "centimetres", 100), ("week", "days", 7),
          ("minute", "seconds", 60), ("kilogram", "grams", 1000), ("year", "months", 12),
          ("day", "hours", 24), ("centimetre", "millimetres", 10))


def _unit_conversion(rng: np.random.Generator) -> QA:
    big, small, factor = _pick(rng, _UNITS)
    n = int(rng.integers(1, 10))
    amount = _plural(n, big)
    return QA(f"how many {small} are in {amount}",
              f"there are {number_words(n * factor)} {small} in {amount}")


def compute_question(rng: np.random.Generator) -> QA:
    """Arithmetic, clock arithmetic or a unit conversion; the answer is computed."""
    kind = int(rng.integers(3))
    return (_arithmetic, _time_arithmetic, _unit_conversion)[kind](rng)


# ---------------------------------------------------------------------------
# multi-turn dialogs: a "memory" turn and a later follow-up that needs it

_COUNTABLE = (("apple", "apples"), ("book", "books"), ("pen", "pens"), ("cookie", "cookies"),
              ("egg", "eggs"), ("orange", "oranges"), ("stamp", "stamps"),
              ("candle", "candles"), ("ticket", "tickets"), ("shell", "shells"))


def _mem_name(rng):
    name = _pick(rng, _ASR_SLOTS["name"])
    return (QA(f"my name is {name}", f"nice to meet you {name}"),
            QA("what is my name", f"your name is {name}"))


def _mem_items(rng):
    sg, pl = _pick(rng, _COUNTABLE)
    n = int(rng.integers(2, 10))
    setup = QA(f"i have {_plural(n, sg, pl)}", f"okay you have {_plural(n, sg, pl)}")
    if rng.integers(2):
        k = int(rng.integers(1, 6))
        q, total = f"i buy {number_words(k)} more how many do i have now", n + k
    else:
        k = int(rng.integers(1, n))
        q, total = f"i give away {number_words(k)} how many do i have now", n - k
    return setup, QA(q, f"you have {_plural(total, sg, pl)}")


def _mem_city(rng):
    city = _pick(rng, _ASR_SLOTS["city"])
    return (QA(f"i live in {city}", f"{city} sounds like a lovely place"),
            QA("where do i live", f"you live in {city}"))


def _mem_pet(rng):
    pet, name = _pick(rng, _ASR_SLOTS["pet"]), _pick(rng, _ASR_SLOTS["pet_name"])
    return (QA(f"i have a {pet} called {name}", f"{name} is a lovely name for a {pet}"),
            QA(f"what is my {pet} called", f"your {pet} is called {name}"))


def _mem_colour(rng):
    colour = _pick(rng, _ASR_SLOTS["colour"])
    return (QA(f"my favourite colour is {colour}", f"{colour} is a nice colour"),
            QA("what is my favourite colour", f"your favourite colour is {colour}"))


def _mem_age(rng):
    age, k = int(rng.integers(18, 61)), int(rng.integers(2, 11))
    return (QA(f"i am {number_words(age)} years old", "thank you for telling me"),
            QA(f"how old will i be in {number_words(k)} years",
               f"you will be {number_words(age + k)} years old"))


def _mem_job(rng):
    job = _pick(rng, _ASR_SLOTS["job"])
    return (QA(f"i work as {job}", "that sounds like interesting work"),
            QA("what is my job", f"you work as {job}"))


def _mem_food(rng):
    dish = _pick(rng, _ASR_SLOTS["dish"])
    return (QA(f"my favourite food is {dish}", f"{dish} is a tasty choice"),
            QA("what is my favourite food", f"your favourite food is {dish}"))


def _mem_meeting(rng):
    start, k = int(rng.integers(13, 18)), int(rng.integers(1, 4))
    return (QA(f"my meeting starts at {_clock_words(start)}",
               f"okay your meeting starts at {_clock_words(start)}"),
            QA(f"when does my meeting end if it lasts {_plural(k, 'hour')}",
               f"your meeting ends at {_clock_words(start + k)}"))


def _mem_sibling(rng):
    rel = _pick(rng, ("brother", "sister"))
    name = _pick(rng, _ASR_SLOTS["name"])
    return (QA(f"my {rel} is called {name}", f"{name} is a nice name"),
            QA(f"what is my {rel} called", f"your {rel} is called {name}"))


_MEMORIES = (_mem_name, _mem_items, _mem_city, _mem_pet, _mem_colour, _mem_age, _mem_job,
             _mem_food, _mem_meeting, _mem_sibling)

_CHITCHAT = _pairs(
    "how are you today=i am fine thank you; "
    "can you help me with something=of course what do you need; "
    "thank you for your help=you are welcome; "
    "what can you do=i can listen and answer your questions; "
    "i am a bit tired today=maybe you should rest a little; "
    "tell me something nice=you are doing a great job")


def _filler_turn(rng: np.random.Generator) -> QA:
    kind = int(rng.integers(3))
    if kind == 0:
        return fact_question(rng)
    if kind == 1:
        return compute_question(rng)
    return QA(*_pick(rng, _CHITCHAT))


def multiturn_dialog(rng: np.random.Generator, n_turns: int, min_gap: int = 1) -> list[QA]:
    """A dialog of `n_turns` turns. With n_turns >= 2 at least one follow-up needs an earlier
    turn at least `min_gap` turns before it; `depends_on` holds that turn's index."""
    if n_turns < 1:
        raise ValueError(f"n_turns must be >= 1, got {n_turns!r}")
    if min_gap < 1 or (n_turns >= 2 and min_gap > n_turns - 1):
        raise ValueError(f"min_gap must be in 1..n_turns-1, got {min_gap!r}")
    turns: list[QA | None] = [None] * n_turns
    n_pairs = 0 if n_turns < 2 else int(rng.integers(1, n_turns // 2 + 1))
    for i in rng.permutation(len(_MEMORIES))[:n_pairs]:
        free = [t for t in range(n_turns) if turns[t] is None]
        starts = [s for s in free if any(f - s >= min_gap for f in free)]
        if not starts:
            break  # no room left for another pair with this gap
        s = _pick(rng, starts)
        f = _pick(rng, [f for f in free if f - s >= min_gap])
        setup, follow = _MEMORIES[i](rng)
        turns[s] = setup
        turns[f] = QA(follow.question, follow.answer, depends_on=s)
    asked = {t.question for t in turns if t is not None}
    for t in range(n_turns):
        while turns[t] is None:
            filler = _filler_turn(rng)
            if filler.question not in asked:  # never ask the same thing twice
                turns[t] = filler
                asked.add(filler.question)
    return turns


def recall_question(kind: str, value: str) -> QA:
    """History review: ask about what an earlier turn contained.

    kind "said": value is an earlier user sentence -> "you said ...";
    kind "event": value is an EVENT_TEXT key -> "i heard ... earlier";
    kind "number": value is a number in words -> "you told me the number ...";
    kind "name": value is a person's name -> "you told me the name ...".
    """
    if kind == "event":
        return QA("what sound did you hear earlier", f"i heard {_event(value)[0]} earlier")
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]+( [a-z]+)*", value):
        raise ValueError(f"value must be lowercase words, got {value!r}")
    if kind == "said":
        return QA("what did i say earlier", f"you said {value}")
    if kind == "number":
        return QA("what number did i tell you earlier", f"you told me the number {value}")
    if kind == "name":
        return QA("what name did i tell you earlier", f"you told me the name {value}")
    raise ValueError(f"unknown recall kind {kind!r}; expected said, event, number or name")


# ---------------------------------------------------------------------------
# emotions

EMOTIONS = ("normal", "happy", "sad", "angry", "surprise", "urgent")

# emotion of the fitting reply -> (user utterance, reply)
EMOTION_SITUATIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "normal": _pairs("""
        can you remind me to buy milk later=sure i will remind you to buy milk;
        if today is monday what day is tomorrow=tomorrow is tuesday;
        i am going to the shop now=okay see you when you get back;
        please turn on the kitchen light=okay turning on the kitchen light;
        i think i will read a book this evening=that sounds like a relaxing evening;
        i need to water the plants today=good idea the plants will like that;
        set a timer for ten minutes please=okay a timer for ten minutes is set;
        what should i cook for dinner=how about some pasta with vegetables;
        i am going to bed now=good night sleep well"""),
    "happy": _pairs("""
        i just won the chess tournament=congratulations that is wonderful news;
        i passed my driving test today=well done that is fantastic;
        my sister just had a baby girl=how wonderful congratulations to your family;
        i got the job i applied for=congratulations you really deserve it;
        we are going on holiday to the beach tomorrow=how exciting have a wonderful time;
        my team won the football final=that is great what a match to win;
        i finally finished writing my first book=amazing that is a great achievement;
        today is my birthday=happy birthday i hope you have a lovely day;
        i got full marks on my maths exam=brilliant all that hard work paid off"""),
    "sad": _pairs("""
        my cat died this morning=i am so sorry about your cat;
        i failed my exam again=i am sorry that must be really hard;
        my best friend is moving away=that is sad you will miss each other;
        i lost my job today=i am very sorry to hear that;
        my grandmother is very ill=i am sorry i hope she gets better soon;
        nobody came to my party=that must have hurt i am so sorry;
        i broke the watch my grandfather gave me=oh no i am sorry that watch meant a lot;
        my team lost the final match=that is disappointing i am sorry;
        my old dog is too sick to walk now=i am so sorry that is heartbreaking"""),
    "angry": _pairs("""
        someone scratched my new car in the car park=that is outrageous they should pay for it;
        a man pushed in front of everyone in the queue=how rude he should wait his turn;
        the shop sold me a broken phone and will not help=
            that is unacceptable they owe you a refund;
        my neighbour dumped his rubbish in my garden=that is not okay he has no right to do that;
        someone stole my bike from outside the library=that is terrible the thief should be caught;
        the company charged me twice for the same order=
            that is wrong they must give your money back;
        my landlord came into my flat without asking=that is unacceptable he must ask you first;
        a driver threw a bottle out of his window at me=that is disgraceful you should report him;
        they cancelled my flight and gave no reason=
            that is so unfair they owe you an explanation"""),
    "surprise": _pairs("""
        i just found out i have a twin sister=really wow i never would have guessed;
        it is snowing here in the middle of summer=snow in summer that is amazing;
        my old teacher is now the mayor of our town=really what a surprise;
        i found a hundred dollars in my old jacket=wow what a lucky find;
        my ninety year old grandfather just ran a marathon=no way that is incredible;
        a famous singer moved in next door=really next door to you wow;
        our dog had seven puppies last night=seven puppies wow that is a lot;
        i won a car in a raffle=you won a car really that is unbelievable;
        my quiet brother is going to be on television=wow i did not expect that at all"""),
    "urgent": _pairs("""
        there is smoke coming from the kitchen=get out of the house now and call the fire brigade;
        i think i smell gas in the house=open the windows leave the house and call for help;
        my friend just fainted and is not breathing=call an ambulance right now and start cpr;
        water is pouring through the ceiling=turn off the main water valve right away;
        my child swallowed some cleaning liquid=call poison control or an ambulance immediately;
        the pan on the stove has caught fire=cover the pan with a lid and turn off the heat now;
        someone is trying to break into my house=lock yourself in a room and call the police now;
        i cut my hand and it is bleeding a lot=press hard on the cut and get medical help now;
        the car in front of us just crashed=call emergency services now and stay off the road"""),
}


def emotion_exchange(rng: np.random.Generator) -> tuple[str, str, str]:
    """(user utterance, reply emotion, reply text); the fitting reply emotion is clear."""
    emotion = _pick(rng, EMOTIONS)
    user, reply = _pick(rng, EMOTION_SITUATIONS[emotion])
    return user, emotion, reply


# ---------------------------------------------------------------------------
# sound events

# event -> (noun phrase, sentence "X is/are ...ing"); dropping "is"/"are" gives the phrase
# used after "i hear" ("a dog barking")
EVENT_TEXT: dict[str, tuple[str, str]] = {
    "smoke_alarm": ("a smoke alarm", "a smoke alarm is beeping"),
    "co_alarm": ("a carbon monoxide alarm", "a carbon monoxide alarm is beeping"),
    "siren": ("a siren", "a siren is wailing"),
    "glass_break": ("breaking glass", "glass is breaking"),
    "crash": ("a loud crash", "something is crashing down"),
    "coughing_fit": ("a coughing fit", "someone is coughing hard"),
    "baby_cry": ("a baby crying", "a baby is crying"),
    "kettle_whistle": ("a whistling kettle", "a kettle is whistling"),
    "oven_beep": ("an oven timer", "an oven timer is beeping"),
    "phone_ring": ("a ringing phone", "a phone is ringing"),
    "car_horn": ("a car horn", "a car horn is honking"),
    "doorbell": ("the doorbell", "the doorbell is ringing"),
    "rain": ("rain", "rain is falling"),
    "wind": ("wind", "the wind is blowing"),
    "birdsong": ("birdsong", "birds are singing"),
    "clock_tick": ("a ticking clock", "a clock is ticking"),
    "typing": ("typing", "someone is typing"),
    "footsteps": ("footsteps", "someone is walking"),
    "water_drip": ("dripping water", "water is dripping"),
    "fan_hum": ("a humming fan", "a fan is humming"),
    "door_knock": ("a knock at the door", "someone is knocking at the door"),
    "dog_bark": ("a dog barking", "a dog is barking"),
    "single_cough": ("a cough", "someone is coughing"),
    "dish_clink": ("clinking dishes", "dishes are clinking"),
    "music": ("music", "music is playing"),
    "tv_speech": ("a television", "people are talking on the television"),
    "cry_for_help": ("a cry for help", "someone is crying for help"),
    "bell": ("a bell", "a bell is ringing"),
    "notification_chime": ("a notification chime", "a notification is chiming"),
}


def _event(event: str) -> tuple[str, str]:
    if event not in EVENT_TEXT:
        raise ValueError(f"unknown event {event!r}; expected one of {sorted(EVENT_TEXT)}")
    return EVENT_TEXT[event]


def _hearing(event: str) -> str:
    """ "a dog is barking" -> "a dog barking", the form that follows "i hear"."""
    return re.sub(r" (is|are) ", " ", _event(event)[1], count=1)


# event -> (reply, emotion); the events the assistant must speak up about unasked
_PROACTIVE: dict[str, tuple[str, str]] = {
    "smoke_alarm": ("i hear a smoke alarm please check for fire now", "urgent"),
    "co_alarm": ("the carbon monoxide alarm is sounding open the windows and get outside",
                 "urgent"),
    "siren": ("i hear a siren an emergency vehicle may be close by", "urgent"),
    "glass_break": ("i heard glass breaking is everyone okay", "urgent"),
    "crash": ("i heard a loud crash is someone hurt", "urgent"),
    "coughing_fit": ("you are coughing a lot are you okay do you need water", "urgent"),
    "baby_cry": ("the baby is crying you may want to check on the baby", "normal"),
    "cry_for_help": ("someone is calling for help should i call emergency services", "urgent"),
    "kettle_whistle": ("your kettle is boiling", "normal"),
    "oven_beep": ("the oven timer went off your food is ready", "normal"),
    "phone_ring": ("your phone is ringing", "normal"),
    "car_horn": ("a car is honking please watch out", "urgent"),
    "doorbell": ("someone is at the door", "normal"),
}
MUST_RESPOND_EVENTS: tuple[str, ...] = tuple(_PROACTIVE)
HARMLESS_EVENTS: tuple[str, ...] = tuple(e for e in EVENT_TEXT if e not in _PROACTIVE)


def proactive_reply(event: str) -> tuple[str, str]:
    """(reply text, emotion) for a must-respond event."""
    if event not in _PROACTIVE:
        raise ValueError(f"event {event!r} needs no proactive reply; "
                         f"expected one of {list(MUST_RESPOND_EVENTS)}")
    return _PROACTIVE[event]


def identify_event(event: str) -> str:
    """Answer to "what is that noise": "that sounds like a smoke alarm"."""
    return f"that sounds like {_event(event)[0]}"


def describe_events(events: list[str]) -> str:
    """"i heard a dog barking then a car horn" (events in order)."""
    if not events:
        raise ValueError("events must not be empty")
    return "i heard " + " then ".join(_event(e)[0] for e in events)


# event -> (one occurrence, several occurrences), for counting
COUNT_NOUNS: dict[str, tuple[str, str]] = {
    "door_knock": ("knock", "knocks"), "dog_bark": ("bark", "barks"),
    "single_cough": ("cough", "coughs"), "car_horn": ("honk", "honks"),
    "doorbell": ("doorbell ring", "doorbell rings"), "bell": ("bell", "bells"),
    "dish_clink": ("clink", "clinks"), "notification_chime": ("chime", "chimes"),
    "oven_beep": ("beep", "beeps"), "phone_ring": ("phone ring", "phone rings"),
    "crash": ("crash", "crashes"), "clock_tick": ("tick", "ticks"),
    "water_drip": ("drip", "drips"), "footsteps": ("step", "steps"),
}


def _count_nouns(event: str) -> tuple[str, str]:
    if event not in COUNT_NOUNS:
        raise ValueError(f"event {event!r} is not countable; expected one of {sorted(COUNT_NOUNS)}")
    return COUNT_NOUNS[event]


def count_instruction(event: str) -> str:
    """"count the knocks out loud"."""
    return f"count the {_count_nouns(event)[1]} out loud"


def count_word(k: int) -> str:
    """Live count said at the k-th occurrence: once, twice, three times ... ten times."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 10:
        raise ValueError(f"k must be an integer in 1..10, got {k!r}")
    return {1: "once", 2: "twice"}.get(int(k), f"{number_words(int(k))} times")


def count_reply(event: str, k: int) -> str:
    """"i heard three knocks"; "i heard no knocks" for zero."""
    sg, pl = _count_nouns(event)
    if k == 0:
        return f"i heard no {pl}"
    return f"i heard {_plural(_check_number(k, 'k'), sg, pl)}"


_TEMPO = ("slow", "medium", "fast")
_DIRECTION = {"rising": "rising in pitch", "falling": "falling in pitch",
              "steady": "staying at one pitch"}
_TIMBRE = {"sine": "a pure sine tone", "square": "a square wave", "sawtooth": "a sawtooth wave",
           "plucked": "a plucked string", "organ": "an organ"}


def music_description(tempo: str, direction: str, timbre: str) -> str:
    """"a fast melody rising in pitch played on a plucked string"."""
    if tempo not in _TEMPO:
        raise ValueError(f"unknown tempo {tempo!r}; expected one of {_TEMPO}")
    if direction not in _DIRECTION:
        raise ValueError(f"unknown direction {direction!r}; expected one of {list(_DIRECTION)}")
    if timbre not in _TIMBRE:
        raise ValueError(f"unknown timbre {timbre!r}; expected one of {list(_TIMBRE)}")
    return f"a {tempo} melody {_DIRECTION[direction]} played on {_TIMBRE[timbre]}"


# ---------------------------------------------------------------------------
# streaming instructions

ASR_INSTRUCTION = "write down what the speaker says"
EVENT_QUESTION = "what is that noise"
NARRATE_INSTRUCTION = "tell me about each sound as you hear it"
MUSIC_QUESTION = "describe the music you hear"


def notify_instruction(event: str) -> tuple[str, str]:
    """("tell me when you hear a dog barking", "i hear a dog barking now")."""
    heard = _hearing(event)
    return f"tell me when you hear {heard}", f"i hear {heard} now"


def keyword_instruction(word: str) -> tuple[str, str]:
    """("tell me when the speaker says banana", "the speaker just said banana")."""
    if not isinstance(word, str) or not re.fullmatch(r"[a-z]+", word):
        raise ValueError(f"word must be one lowercase word, got {word!r}")
    return f"tell me when the speaker says {word}", f"the speaker just said {word}"


SUMMARY_CUE = "summary"


def summarize_instruction() -> tuple[str, str]:
    """(instruction, cue word): the summary is due when the user says the cue word."""
    return f"when i say {SUMMARY_CUE} tell me what i talked about", SUMMARY_CUE


_LANGUAGE_NAMES = {"zh": "chinese", "en": "english"}


def translate_instruction(target: str, switch: bool = False) -> str:
    """"translate what i say into chinese"; with switch, "now translate into english"."""
    if target not in _LANGUAGE_NAMES:
        raise ValueError(f"unknown target {target!r}; expected 'zh' or 'en'")
    lang = _LANGUAGE_NAMES[target]
    return f"now translate into {lang}" if switch else f"translate what i say into {lang}"


# ---------------------------------------------------------------------------
# environment-aware replies

# scene -> harmless events that make it up (empty: a quiet room)
SCENES: dict[str, tuple[str, ...]] = {
    "rain": ("rain",), "wind": ("wind",), "street": ("footsteps",),
    "kitchen": ("dish_clink", "water_drip"), "quiet": (), "party": ("music", "tv_speech"),
}

# question -> {scene: reply}; a question is only asked in the scenes it has a reply for
_ENV_QUESTIONS: dict[str, dict[str, str]] = {
    "should i go for a walk now": {
        "rain": "it sounds like it is raining take an umbrella",
        "wind": "it sounds very windy out there wear a warm coat",
        "street": "yes but the street sounds busy so take care crossing",
        "kitchen": "maybe after you finish cooking in the kitchen",
        "quiet": "yes it sounds calm and quiet a walk would be nice",
        "party": "it is loud in here a quiet walk might be nice",
    },
    "can you hear me clearly": {
        "rain": "yes but the rain is a bit loud please speak up",
        "wind": "the wind is loud please speak a little louder",
        "street": "the traffic is noisy please speak louder",
        "kitchen": "yes though the kitchen is a little noisy",
        "quiet": "yes i can hear you clearly it is very quiet",
        "party": "the music is loud please speak up",
    },
    "is it a good time for a nap": {
        "rain": "yes the sound of rain is very relaxing",
        "wind": "the wind is noisy but you could try",
        "street": "the street is noisy try closing the window first",
        "kitchen": "maybe after the cooking is done",
        "quiet": "yes it is nice and quiet a nap sounds good",
        "party": "it is very noisy maybe wait until the music stops",
    },
    "is now a good time to make a phone call": {
        "rain": "yes the rain is not too loud",
        "wind": "yes but stay indoors away from the wind",
        "street": "the traffic is loud try somewhere quieter",
        "kitchen": "yes but move away from the kitchen noise",
        "quiet": "yes it is quiet so now is a good time",
        "party": "it is too loud here find a quieter room first",
    },
    "should i hang the washing outside": {
        "rain": "no it sounds like it is raining keep it inside",
        "wind": "it sounds very windy so use plenty of pegs",
    },
    "what should i wear to go out": {
        "rain": "wear a raincoat it sounds like rain",
        "wind": "wear a warm jacket it sounds windy outside",
    },
    "can i leave the window open": {
        "rain": "better close it it sounds like it is raining",
        "wind": "close it the wind sounds strong",
        "street": "you can but the street noise will come in",
        "quiet": "yes it is nice and quiet outside",
    },
}


def env_adapt_exchange(rng: np.random.Generator, scene: str) -> tuple[str, str]:
    """(question, reply) where the best reply depends on the sound scene."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; expected one of {list(SCENES)}")
    question = _pick(rng, [q for q, replies in _ENV_QUESTIONS.items() if scene in replies])
    return question, _ENV_QUESTIONS[question][scene]


_IRRELEVANT_TEMPLATES = (
    "hello {name} yes i am on my way home now",
    "{name} can you pass me the {passable}",
    "hey {name} dinner is ready come and eat",
    "no {name} i told you the meeting is on {day}",
    "hi mum i will be home at {clock}",
    "{name} did you remember to feed the {pet}",
    "yes i can pick you up from the station at {clock}",
    "hang on {name} let me find my keys",
    "okay {name} i will call you back in {number_small} minutes",
    "{name} where did you put the {object}",
    "sorry {name} i cannot talk right now i am driving",
    "we could have {dish} for lunch {name} what do you think",
    "yes doctor i can come in on {day} morning",
    "{name} please turn the music down a bit",
    "hello this is {name} calling about the flat",
    "love you too {name} see you on {day}",
)
_IRRELEVANT_SLOTS = dict(_ASR_SLOTS, passable=_words("salt pepper bread butter water sugar"))


def irrelevant_speech(rng: np.random.Generator) -> str:
    """Speech addressed to someone else (a phone call, a person in the room): stay silent."""
    template = _pick(rng, _IRRELEVANT_TEMPLATES)
    return _fill(template, _draw_slots(rng, template, _IRRELEVANT_SLOTS))
