"""Headless `piper-ws` commands, one module each (see app/cli.py)."""


def parse_image_size(text: str) -> tuple[int, int]:
    """'96x128' -> (96, 128): an `--image-size HxW` value; a ValueError that says how otherwise."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image-size {text!r}: give it as HxW, e.g. 96x128") from None
    return height, width
