"""The seven HAM10000 diagnosis codes, in the order used for every label index and column."""

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

CLASS_DESCRIPTIONS = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}

N_CLASSES = len(CLASSES)
