"""Count words: reads inputs.json, writes result.json (the floom script contract)."""

import json

inputs = json.load(open("inputs.json"))
text = str(inputs.get("text", ""))
min_length = int(inputs.get("min_length") or 1)
words = [w for w in text.split() if len(w) >= min_length]
print(f"counted {len(words)} words")
result = {
    "status": "success",
    "outputs": {
        "words": len(words),
        "lines": len(text.splitlines()) or (1 if text else 0),
        "longest": max(words, key=len) if words else "",
    },
    "artifacts": [],
    "error": None,
}
json.dump(result, open("result.json", "w"))
