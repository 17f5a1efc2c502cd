"""StreamAudio-mini corpus synthesis: voices, sound events, text, composition, manifests."""
