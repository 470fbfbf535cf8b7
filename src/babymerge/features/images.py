"""Which images to extract: a folder of images, or the images a caption file names (``formats.captions``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from ..errors import BabymergeError
from ..formats.captions import caption_images, read_captions

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageSource:
    """One image: its id (the file name as given) and where it lies."""

    image_id: str
    path: Path


def images_in_folder(folder: Path) -> list[ImageSource]:
    """Every image file under ``folder``, sorted; ids are paths relative to the folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BabymergeError(f"{folder}: no image files found (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    return [ImageSource(p.relative_to(folder).as_posix(), p) for p in files]


def images_in_captions(captions: Path) -> list[ImageSource]:
    """The distinct images a captions file names, in order of first mention.

    Images are looked up in an ``images/`` folder beside the file, else beside the file itself.
    """
    names = caption_images(read_captions(captions))
    roots = [captions.parent / "images", captions.parent]
    sources = []
    for name in names:
        relative = PurePosixPath(name.replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts:
            raise BabymergeError(f"{captions}: image {name!r} points outside the image folder (expected a file name)")
        path = next((root / name for root in roots if (root / name).is_file()), None)
        if path is None:
            raise BabymergeError(f"{captions}: image {name!r} not found in {roots[0]} or {roots[1]}")
        sources.append(ImageSource(name, path))
    return sources


def list_images(source: str | os.PathLike) -> list[ImageSource]:
    """The images named by ``source``: a folder of images or a captions file."""
    path = Path(source)
    if path.is_dir():
        return images_in_folder(path)
    if path.is_file():
        return images_in_captions(path)
    raise BabymergeError(f"{path}: not found (expected a folder of images or a captions file)")


def load_rgb(source: ImageSource) -> Image.Image:
    """The image as RGB; an unreadable file raises one line naming it."""
    try:
        with Image.open(source.path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise BabymergeError(f"{source.path}: unreadable image ({' '.join(str(error).split())})") from None


def black_image(size: int = 224) -> Image.Image:
    """An all-black RGB image; the processor resizes it like any other image."""
    return Image.new("RGB", (size, size), (0, 0, 0))
