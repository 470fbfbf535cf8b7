"""Switch a saved tokenizer's leading space (a space before a string's first word) on or off, in place.

    python benchmarks/real_data_probes/leading_space.py FOLDER/tokenizer.json on|off

On, as ``babymerge tokenizer`` trains it since da83d11: the byte-level pre-tokenizer adds the space and the
decoder strips it again. Off, as before: neither. The vocabulary and merges stay as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STRIP = {"type": "Strip", "content": " ", "start": 1, "stop": 0}


def main(path: Path, on: bool) -> None:
    spec = json.loads(path.read_text(encoding="utf-8"))
    decoder = spec["decoder"]
    byte_level = decoder["decoders"][0] if decoder["type"] == "Sequence" else decoder
    spec["pre_tokenizer"]["add_prefix_space"] = on
    spec["decoder"] = {"type": "Sequence", "decoders": [byte_level, STRIP]} if on else byte_level
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), {"on": True, "off": False}[sys.argv[2]])
