"""The 12 classes of SUPERB keyword spotting on Speech Commands v0.01, in label-id order."""

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
LABELS = (*KEYWORDS, SILENCE, UNKNOWN)
ID2LABEL = dict(enumerate(LABELS))
LABEL2ID = {label: i for i, label in ID2LABEL.items()}
