"""A small synthetic developmental world: rendered scenes with grounded captions, a text corpus that uses
the same words, grammar minimal pairs, and image-caption matching items.

Everything is generated from a seed, so two runs write identical files. Layout (the real data's formats,
so every stage reads it unchanged; ``evaluation_data/`` is a data directory for ``babymerge evaluate``):

- ``text/world.train``: BabyLM-format text (one sentence a line), child-directed style;
- ``captions.txt`` (``image,caption``) beside ``images/``: training scenes with grounded captions (Flickr8k
  format); ``images/`` holds every image of the world, so one feature file covers them all;
- ``evaluation_data/fast_eval/blimp_fast/<UID>.jsonl``: BLiMP-format minimal pairs (``sentence_good``,
  ``sentence_bad``, ``field``, ``linguistics_term``, ``UID``, ``pair_id``) for five phenomena;
- ``evaluation_data/extra_eval/caption_matching/captions.txt``: held-out scenes for caption matching;
- ``evaluation_data/full_eval/winoground_filtered/winoground.jsonl``: Winoground-style rows (a scene and its
  colour-swapped twin, ``image_idx``, ``image_key`` image_0/image_1, ``caption_0`` the correct one);
- ``WORLD.md``: what the world holds and that it is synthetic.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from ..formats.captions import write_captions
from ..io import atomic_dir

COLOURS = {
    "red": (220, 40, 40),
    "blue": (40, 70, 220),
    "green": (40, 170, 60),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
SHAPES = ["ball", "box", "kite", "cone", "block"]
SIZES = {"big": 0.85, "small": 0.55}  # diameter, as a share of the image, of a scene's one thing
BACKGROUND = (225, 225, 225)  # flat and the same for every scene, so colour and size carry the image
RELATIONS = ["left of", "right of", "above", "below"]
VERBS = {"rolls": "roll", "falls": "fall", "spins": "spin", "stops": "stop", "moves": "move"}
AGENTS = ["mummy", "daddy", "the baby", "the dog", "the cat"]
EVALUATION_DATA = "evaluation_data"
MIRRORS = (
    "Built to mirror the paper's conditions: captions are short noun phrases, another register than the "
    "child-directed text corpus; the multimodal run takes half its words from captions; Winoground-style items "
    "need positions, which one mean-pooled image token mostly loses. Details: babymerge's docs/WORLD.md."
)
PLURAL = {shape: shape + ("es" if shape.endswith("x") else "s") for shape in SHAPES}


class WorldSize(BaseModel):
    """How much of the world to generate."""

    model_config = ConfigDict(extra="forbid")

    scenes: int = Field(3000, ge=4)
    matching_items: int = Field(160, ge=2)
    text_sentences: int = Field(8000, ge=10)
    pairs_per_phenomenon: int = Field(60, ge=2)
    image_size: int = Field(64, ge=32, le=512)
    seed: int = 0


QUICK = WorldSize(scenes=1600, matching_items=40, text_sentences=2500, pairs_per_phenomenon=8)


@dataclass(frozen=True)
class Thing:
    colour: str
    shape: str
    size: str

    def words(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """One thing (a training or caption-matching scene), or two in a relation (a Winoground-style scene)."""

    first: Thing
    relation: str | None = None
    second: Thing | None = None

    def caption(self) -> str:
        if self.second is None:
            return sentence(f"a {self.first.words()}")
        return sentence(
            f"a {self.first.colour} {self.first.shape} is {self.relation} a {self.second.colour} {self.second.shape}"
        )

    def swapped_colours(self) -> Scene:
        """The same words rearranged: the two colours trade places (a Winoground-style foil)."""
        a, b = self.first, self.second
        return Scene(Thing(b.colour, a.shape, a.size), self.relation, Thing(a.colour, b.shape, b.size))


def sentence(words: str, end: str = ".") -> str:
    return words[0].upper() + words[1:] + end


def random_thing(rng: random.Random) -> Thing:
    return Thing(rng.choice(sorted(COLOURS)), rng.choice(SHAPES), rng.choice(sorted(SIZES)))


def random_scene(rng: random.Random) -> Scene:
    return Scene(random_thing(rng))


def random_pair_scene(rng: random.Random) -> Scene:
    first = random_thing(rng)
    second = random_thing(rng)
    while second.colour == first.colour:
        second = random_thing(rng)
    return Scene(first, rng.choice(RELATIONS), second)


def draw_thing(draw: ImageDraw.ImageDraw, thing: Thing, cx: float, cy: float, size: float) -> None:
    """``thing`` centred at (cx, cy), its diameter ``SIZES[thing.size]`` times ``size`` pixels."""
    r = SIZES[thing.size] * size / 2
    colour = COLOURS[thing.colour]
    box = (cx - r, cy - r, cx + r, cy + r)
    if thing.shape == "ball":
        draw.ellipse(box, fill=colour)
    elif thing.shape == "box":
        draw.rectangle(box, fill=colour)
    elif thing.shape == "block":
        draw.rectangle((cx - r, cy - r / 2, cx + r, cy + r / 2), fill=colour)
    elif thing.shape == "kite":
        draw.polygon([(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)], fill=colour)
    else:  # cone
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)


def render(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """The scene on a flat light background: one thing large in the middle, or two things at half that size,
    the first standing ``relation`` the second."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    jitter = size * 0.04
    if scene.second is None:
        draw_thing(
            draw, scene.first, size / 2 + rng.uniform(-jitter, jitter), size / 2 + rng.uniform(-jitter, jitter), size
        )
        return image
    near, far = 0.25, 0.75
    offsets = {"left of": ((near, 0.5), (far, 0.5)), "right of": ((far, 0.5), (near, 0.5))}
    offsets |= {"above": ((0.5, near), (0.5, far)), "below": ((0.5, far), (0.5, near))}
    for thing, (x, y) in zip((scene.first, scene.second), offsets[scene.relation], strict=True):
        draw_thing(
            draw, thing, x * size + rng.uniform(-jitter, jitter), y * size + rng.uniform(-jitter, jitter), size / 2
        )
    return image


def text_sentence(rng: random.Random) -> str:
    """One sentence of the text-only corpus: the world's words with agreement and fixed word order."""
    thing, other = random_thing(rng), random_thing(rng)
    plural = rng.random() < 0.4
    noun = PLURAL[thing.shape] if plural else thing.shape
    be, this = ("are", "these") if plural else ("is", "this")
    verb = rng.choice(sorted(VERBS))
    kind = rng.randrange(8)
    if kind == 0:
        return sentence(f"the {thing.colour} {noun} {be} {thing.size}")
    if kind == 1:
        return sentence(f"the {thing.size} {noun} {VERBS[verb] if plural else verb}")
    if kind == 2:
        return sentence(f"{this} {noun} {be} {thing.colour}")
    if kind == 3:
        return sentence(f"the {thing.colour} {noun} {be} {rng.choice(RELATIONS)} the {other.shape}")
    if kind == 4:
        return sentence(f"where {be} the {thing.colour} {noun}", "?")
    if kind == 5:
        return sentence(f"look , {rng.choice(AGENTS)} has a {thing.words()}", "!")
    if kind == 6:
        return sentence(f"can you find the {thing.size} {thing.shape}", "?")
    return sentence(f"{rng.choice(AGENTS)} sees that the {thing.shape} {verb}")


@dataclass(frozen=True)
class Subject:
    """What a minimal pair talks about: a thing (singular or plural) and another thing's shape."""

    thing: Thing
    other: Thing
    plural: bool

    @property
    def noun(self) -> str:
        return PLURAL[self.thing.shape] if self.plural else self.thing.shape

    @property
    def be(self) -> tuple[str, str]:
        """The right and the wrong form of *be*."""
        return ("are", "is") if self.plural else ("is", "are")


def be_agreement(rng: random.Random, s: Subject) -> tuple[str, str]:
    (be, wrong), t = s.be, s.thing
    return sentence(f"the {t.colour} {s.noun} {be} {t.size}"), sentence(f"the {t.colour} {s.noun} {wrong} {t.size}")


def verb_agreement(rng: random.Random, s: Subject) -> tuple[str, str]:
    verb = rng.choice(sorted(VERBS))
    right, wrong = (VERBS[verb], verb) if s.plural else (verb, VERBS[verb])
    return sentence(f"the {s.thing.size} {s.noun} {right}"), sentence(f"the {s.thing.size} {s.noun} {wrong}")


def determiner_noun_agreement(rng: random.Random, s: Subject) -> tuple[str, str]:
    this, wrong = ("these", "this") if s.plural else ("this", "these")
    be, colour = s.be[0], s.thing.colour
    return sentence(f"{this} {s.noun} {be} {colour}"), sentence(f"{wrong} {s.noun} {be} {colour}")


def adjective_order(rng: random.Random, s: Subject) -> tuple[str, str]:
    be, t = s.be[0], s.thing
    return sentence(f"the {t.colour} {s.noun} {be} {t.size}"), sentence(f"the {s.noun} {t.colour} {be} {t.size}")


def relation_order(rng: random.Random, s: Subject) -> tuple[str, str]:
    relation = rng.choice(RELATIONS)
    words = relation.split()
    start, shape = f"the {s.thing.colour} {s.noun} {s.be[0]}", s.other.shape
    good = sentence(f"{start} {relation} the {shape}")
    if len(words) > 1:
        return good, sentence(f"{start} {' '.join(reversed(words))} the {shape}")
    return good, sentence(f"{start} the {shape} {relation}")


PairMaker = Callable[[random.Random, Subject], tuple[str, str]]

# BLiMP UID -> (linguistics term, the generator of its (good, bad) sentences)
PHENOMENA: dict[str, tuple[str, PairMaker]] = {
    "world_be_agreement": ("subject_verb_agreement", be_agreement),
    "world_verb_agreement": ("subject_verb_agreement", verb_agreement),
    "world_determiner_noun_agreement": ("determiner_noun_agreement", determiner_noun_agreement),
    "world_adjective_order": ("word_order", adjective_order),
    "world_relation_order": ("word_order", relation_order),
}


def blimp_row(uid: str, term: str, good: str, bad: str, index: int) -> dict:
    return {
        "sentence_good": good,
        "sentence_bad": bad,
        "field": "morphology" if "agreement" in uid else "syntax",
        "linguistics_term": term,
        "UID": uid,
        "pair_id": index,
        "simple_LM_method": True,
    }


def minimal_pairs(rng: random.Random, count: int) -> dict[str, list[dict]]:
    """BLiMP-format pairs for the phenomena of :data:`PHENOMENA`, which the text corpus teaches (good sentence
    first; ``count`` distinct good sentences each, as far as 50 tries per pair find them)."""
    out: dict[str, list[dict]] = {}
    for uid, (term, make) in PHENOMENA.items():
        rows, seen = [], set()
        attempts = 0
        while len(rows) < count and attempts < count * 50:
            attempts += 1
            thing, other = random_thing(rng), random_thing(rng)
            good, bad = make(rng, Subject(thing, other, plural=rng.random() < 0.5))
            if good in seen:
                continue
            seen.add(good)
            rows.append(blimp_row(uid, term, good, bad, len(rows)))
        out[uid] = rows
    return out


def scenes(rng: random.Random, count: int) -> list[Scene]:
    return [random_scene(rng) for _ in range(count)]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def generate_world(out_dir: str | os.PathLike, size: WorldSize | None = None, *, overwrite: bool = False) -> Path:
    """Write the synthetic world to ``out_dir`` (atomically) and return the folder."""
    size = size or WorldSize()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        rng = random.Random(size.seed)
        images = tmp / "images"
        images.mkdir()

        def save(name: str, scene: Scene) -> str:
            (images / name).write_bytes(png_bytes(render(scene, size.image_size, rng)))
            return name

        # Scenes for image-caption training, in Flickr8k's format (captions.txt beside images/).
        rows = [(save(f"scene_{i:05d}.png", s), s.caption()) for i, s in enumerate(scenes(rng, size.scenes))]
        write_captions(tmp / "captions.txt", rows)
        # Text-only corpus over the same words.
        corpus = [text_sentence(rng) for _ in range(size.text_sentences)]
        (tmp / "text").mkdir()
        (tmp / "text" / "world.train").write_text("\n".join(corpus) + "\n", encoding="utf-8")
        evaluation = tmp / EVALUATION_DATA
        # Grammar minimal pairs, laid out like BabyLM's fast BLiMP.
        for uid, pairs in minimal_pairs(rng, size.pairs_per_phenomenon).items():
            write_jsonl(evaluation / "fast_eval" / "blimp_fast" / f"{uid}.jsonl", pairs)
        # Held-out scenes for caption matching (Flickr8k format).
        held_out = [
            (save(f"heldout_{i:05d}.png", s), s.caption()) for i, s in enumerate(scenes(rng, size.matching_items))
        ]
        write_captions(evaluation / "extra_eval" / "caption_matching" / "captions.txt", held_out)
        # Winoground-style pairs: a scene and its colour-swapped twin, each image with both captions.
        rows_wg = []
        for index in range(max(size.matching_items // 2, 1)):
            scene = random_pair_scene(rng)
            twin = scene.swapped_colours()
            for key, own, other in (("image_0", scene, twin), ("image_1", twin, scene)):
                save(f"{index}_{key}.png", own)
                row = {"id": len(rows_wg), "caption_0": own.caption(), "caption_1": other.caption()}
                rows_wg.append({**row, "tag": "Colour-Swap", "image_idx": index, "image_key": key})
        write_jsonl(evaluation / "full_eval" / "winoground_filtered" / "winoground.jsonl", rows_wg)
        words = sum(len(line.split()) for line in corpus)
        (tmp / "WORLD.md").write_text(
            "# A synthetic developmental world (generated by babymerge; not real data)\n\n"
            f"{MIRRORS}\n\n"
            f"seed {size.seed}: {size.scenes} scenes ({size.image_size} px) with grounded captions, a text corpus of "
            f"{len(corpus)} sentences ({words} words), {size.pairs_per_phenomenon} minimal pairs for each of 5 "
            f"phenomena, {size.matching_items} image-caption matching items.\n",
            encoding="utf-8",
        )
    return out_dir
