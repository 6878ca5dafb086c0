"""The HTTP edge of `vaekit serve`: base64 PNGs to tensors and back, and the middleware that caps request
bodies. Pillow, numpy, torch and fastapi are imported inside the functions."""

from __future__ import annotations

import base64
import io

from ..errors import DataError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_to_tensor(text: str, shape: tuple[int, ...], resize: bool = False, max_pixels: int = 1 << 20,
                  label: str = "image"):
    """A base64 PNG -> float tensor (C, H, W) in [0, 1] for a model of data shape (C, H, W)."""
    import numpy as np
    import torch
    from PIL import Image

    channels, height, width = shape
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise DataError(f"{label} is not valid base64: send the PNG file's bytes base64-encoded") from None
    if not data.startswith(_PNG_SIGNATURE):
        raise DataError(f"{label} is not a PNG: convert it to PNG first")
    try:
        picture = Image.open(io.BytesIO(data))
        if picture.width * picture.height > max_pixels:
            raise DataError(f"{label} has {picture.width}x{picture.height} pixels, more than {max_pixels}: shrink it")
        picture = picture.convert("L" if channels == 1 else "RGB")
    except DataError:
        raise
    except Exception:  # untrusted bytes: Pillow raises many kinds of errors on corrupt files
        raise DataError(f"{label} is not a readable PNG") from None
    if picture.size != (width, height):
        if not resize:
            raise DataError(f"{label} is {picture.width}x{picture.height} but the model takes {width}x{height}: "
                            "send images of that size or set resize=true")
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(picture, dtype=np.float32) / 255
    return torch.from_numpy(array.reshape(height, width, channels).transpose(2, 0, 1).copy())


def tensor_to_png(image) -> str:
    """A tensor (C, H, W) with C in {1, 3}, values clipped to [0, 1] -> base64 PNG."""
    import numpy as np
    from PIL import Image

    array = (image.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class BodyLimit:
    """ASGI middleware: answer 413 when a request body exceeds `limit` bytes, by Content-Length
    up front or by counting a streamed body."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from fastapi import HTTPException
        from starlette.responses import JSONResponse

        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            response = JSONResponse({"detail": f"request body over {self.limit} bytes: send fewer or smaller "
                                               "examples"}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes: send fewer or smaller examples")
            return message

        await self.app(scope, counted, send)
