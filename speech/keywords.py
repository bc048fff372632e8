"""The 12 classes of SUPERB keyword spotting on Speech Commands v0.01, in label-id order."""

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
LABELS = (*KEYWORDS, SILENCE, UNKNOWN)
ID2LABEL = dict(enumerate(LABELS))
LABEL2ID = {label: i for i, label in ID2LABEL.items()}


def to_label(word: str) -> str:
    """Speech Commands folder/word name -> one of the 12 classes (other words are `_unknown_`)."""
    if word in KEYWORDS:
        return word
    return SILENCE if word in (SILENCE, "_background_noise_", "silence") else UNKNOWN


def class_weights(label_ids, num_classes: int = len(LABELS)):
    """scikit-learn's 'balanced' weights, n_samples / (n_classes * count_c), for the classes present;
    a class absent from training gets weight 0 (it cannot be learned, and would divide by 0).

    Args:
        label_ids: [N] training class ids.
        num_classes: the number of classes.

    Returns:
        [num_classes] float weights.
    """
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    label_ids = np.asarray(label_ids)
    present = np.unique(label_ids)
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = compute_class_weight("balanced", classes=present, y=label_ids)
    return weights
