"""`vaekit serve`: a JSON API and a browser page over trained runs (FastAPI + uvicorn: `pip install vaekit[serve]`).

A thin composition: each endpoint turns JSON (images as base64 PNG, or flat arrays) into a tensor of
shape (batch, *data_shape), calls one VAE method (encode, decode_mean, reconstruct, elbo,
log_likelihood; a semi-supervised run's classes through apps.images.predict_classes) and answers JSON. Models are loaded once, at start, from the run directories named
on the command line; clients name a model, never a path. Scores are in nats per example.
Tabular, recommender and text model directories get their apps' calls instead (see serve_apps.py); PNGs and
the body limit are in serve_http.py, the core endpoints' JSON bodies in serve_schemas.py.

    vaekit serve runs/mlp digits=runs/digits --port 8000     # then open http://127.0.0.1:8000/
"""

import contextlib
import dataclasses
import math
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..config import option
from ..errors import ConfigError, DataError, optional_import
from .serve_apps import ENDPOINTS, AppModel, add_routes, served_kind
from .serve_http import BodyLimit, png_to_tensor, tensor_to_png

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ORIGIN = re.compile(r"^https?://[^/\s]+$")  # scheme://host[:port], what a browser sends as Origin


@dataclass(frozen=True)
class ServeConfig:
    """Limits and safety switches of the API; every one applies per request."""

    max_body_bytes: int = option(1 << 20, "request body cap in bytes (1 MiB: 64 PNGs of 64x64 fit many times "
                                 "over); larger bodies get 413")
    max_batch: int = option(64, "examples (images, rows, latent codes, samples) per request")
    max_k: int = option(1000, "samples per example for /score; the work of a request is batch * k decodes")
    max_pixels: int = option(1 << 20, "pixels of one PNG before it is decoded (decompression bombs)", cli=False)
    max_values: int = option(3 * 256 * 256, "values of one flat example in `x`", cli=False)
    latent_limit: float = option(50.0, "|z| bound: far beyond any prior's mass, keeps decoders finite", cli=False)
    cors_origins: tuple[str, ...] = option((), "allow browser calls from this origin, e.g. http://localhost:3000 "
                                           "(repeatable); none: CORS off", flag="cors-origin")
    allowed_hosts: tuple[str, ...] = option(("127.0.0.1", "localhost", "[::1]"), "Host header values accepted "
                                            "(DNS rebinding)", cli=False)

    def validate(self) -> None:
        from ..config import check_values

        check_values(self)
        for name in ("max_body_bytes", "max_batch", "max_k", "max_pixels", "max_values"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        for origin in self.cors_origins:
            if not _ORIGIN.match(origin):
                raise ConfigError(f"--cors-origin must be an origin like http://localhost:3000, got '{origin}'")


@dataclass
class Served:
    """One model behind the API: its public name and the loaded run (never shown to clients)."""

    name: str
    run: object  # vaekit.apps.images.Run
    kind: str = field(init=False, default="core")
    shape: tuple[int, ...] = field(init=False)
    image: bool = field(init=False)

    def __post_init__(self):
        self.shape = tuple(self.run.model.data_shape)
        self.image = len(self.shape) == 3 and self.shape[0] in (1, 3)

    @property
    def vae(self):
        return self.run.vae

    def info(self) -> dict:
        history = self.run.history[-1] if self.run.history else {}
        return {"name": self.name, "kind": self.kind, "data_shape": list(self.shape), "latent_dim": self.vae.latent_dim,
                "image": self.image, "likelihood": self.run.model.likelihood, "network": self.run.model.network,
                "prior": self.run.model.prior, "dataset": Path(self.run.data.data).name,
                "epochs": len(self.run.history), "val_neg_elbo": history.get("val_neg_elbo"),
                "classes": self.run.model.n_classes if self.run.model.semi_supervised else None}


def load_models(runs, device: str = "cpu") -> dict[str, "Served | AppModel"]:
    """Load model directories ('DIR' or 'NAME=DIR'; the name defaults to the folder's name) or Run objects.
    A directory's kind comes from its config.json (serve_apps.served_kind): core runs of 'vaekit train' (and
    audio models) become Served, tabular/recommend/text models AppModel."""
    from .images import Run
    from .registry import LOADERS

    models: dict[str, Served | AppModel] = {}
    for item in runs:
        if isinstance(item, Run):
            name, kind, model = (item.path.resolve().name if item.path else "model"), "core", item
        else:
            text = str(item)
            name, _, folder = text.rpartition("=") if "=" in text else ("", "", text)
            name = name or Path(folder).resolve().name
            kind = served_kind(folder)
            model = LOADERS[kind](folder, device)
        if not _NAME.match(name):
            raise ConfigError(f"model name '{name}' must be letters, digits, '.', '_' or '-': pass NAME=DIR")
        if name in models:
            raise ConfigError(f"two models are named '{name}': name them apart with NAME=DIR")
        models[name] = Served(name, model) if kind == "core" else AppModel(name, kind, model)
    if not models:
        raise ConfigError("no model to serve: pass at least one directory written by 'vaekit train', "
                          "'vaekit tabular fit', 'vaekit recommend fit' or 'vaekit text fit'")
    return models


_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded(seed: int):
    """torch's global RNG seeded for one request, restored after; one request at a time."""
    import torch

    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def create_app(runs, config: ServeConfig | None = None, device: str = "cpu"):
    """The ASGI app (FastAPI) serving `runs` (see load_models). OpenAPI schema at /openapi.json."""
    from fastapi import FastAPI

    from .serve_schemas import core_schemas

    config = config or ServeConfig()
    config.validate()
    models = load_models(runs, device)
    schemas = core_schemas(config)
    model = _picker(models)
    errors = {404: {"description": "unknown model"}, 409: {"description": "model of another kind, or /classify on a "
                                                                        "model without a classifier"},
              413: {"description": "body too large"},
              422: {"description": "invalid request; 'detail' says what was wrong"}}
    app = FastAPI(title="vaekit serve", version=_version(), docs_url=None, redoc_url=None,
                  description="Encode, decode, sample, reconstruct, score and classify with trained vaekit models. "
                              "Images are base64 PNG; scores are nats per example.")
    _add_error_handlers(app)
    _add_page(app)
    _add_listing(app, models, schemas)
    _add_codec_routes(app, config, model, schemas, errors)
    _add_scoring_routes(app, config, model, schemas, errors)
    add_routes(app, config, model, errors)
    _add_middleware(app, config)
    app.state.models = models
    return app


def _picker(models: dict):
    """`model(name, kind)`: the served model, or a 404 (unknown name) or 409 (a model of another kind)."""
    from fastapi import HTTPException

    def model(name: str, kind: str = "core"):
        if name not in models:
            raise HTTPException(404, f"unknown model '{name}': choose one of {', '.join(models)} (GET /models)")
        if models[name].kind != kind:
            raise HTTPException(409, f"model '{name}' is a {models[name].kind} model: call "
                                     f"{ENDPOINTS[models[name].kind]}, or pick a {kind} model (GET /models)")
        return models[name]

    return model


def _inputs(request, served: Served, config: ServeConfig):
    import torch

    if request.images is not None:
        if not served.image:
            raise DataError(f"model '{served.name}' takes arrays of shape {served.shape}, not images: send 'x'")
        x = torch.stack([png_to_tensor(text, served.shape, request.resize, config.max_pixels, f"images[{i}]")
                         for i, text in enumerate(request.images)])
    else:
        values = math.prod(served.shape)
        for i, row in enumerate(request.x):
            if len(row) != values:
                raise DataError(f"x[{i}] has {len(row)} values but model '{served.name}' takes {values} "
                                f"(data shape {served.shape}, flattened)")
        x = torch.tensor(request.x, dtype=torch.float32).view(-1, *served.shape)
    served.vae.likelihood.check_data(x)
    return x.to(_device(served))


def _outputs(served: Served, x, format: str) -> dict:
    if format == "png":
        if not served.image:
            raise DataError(f"model '{served.name}' is not an image model: ask for format='array'")
        return {"images": [tensor_to_png(image) for image in x]}
    return {"x": x.reshape(len(x), -1).tolist()}


def _latents(served: Served, z: list[list[float]]):
    import torch

    for i, row in enumerate(z):
        if len(row) != served.vae.latent_dim:
            raise DataError(f"z[{i}] has {len(row)} values but model '{served.name}' has latent_dim "
                            f"{served.vae.latent_dim}")
    return torch.tensor(z, dtype=torch.float32, device=_device(served))


def _add_error_handlers(app) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from ..errors import VaekitError

    @app.exception_handler(VaekitError)
    async def _user_error(request: Request, err: VaekitError):
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        # Where and what, without echoing the input back (it may be large, or NaN, which JSON cannot carry).
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
        return JSONResponse({"detail": detail}, status_code=422)


def _add_page(app) -> None:
    from fastapi.responses import HTMLResponse

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        from importlib.resources import files

        html = files(__package__).joinpath("static/serve.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                       "style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff"})


def _add_listing(app, models: dict, schemas) -> None:
    @app.get("/models", response_model=list[schemas.ModelInfo])
    def list_models():
        """The models this server holds, with their data shape and latent size."""
        return [served.info() for served in models.values()]


def _add_codec_routes(app, config: ServeConfig, model, schemas, errors: dict) -> None:
    """POST /encode, /decode and /sample: between data and latent codes."""
    import torch

    @app.post("/encode", response_model=schemas.EncodeResponse, responses=errors)
    def encode(request: schemas.Inputs):
        """q(z|x) per example: posterior mean and standard deviation."""
        served = model(request.model)
        with torch.inference_mode():
            qz = served.vae.encode(_inputs(request, served, config))
        return {"loc": qz.mean.tolist(), "scale": qz.stddev.tolist()}

    @app.post("/decode", response_model=schemas.Outputs, responses=errors, response_model_exclude_none=True)
    def decode(request: schemas.DecodeRequest):
        """E[x|z] for each latent code."""
        served = model(request.model)
        with torch.inference_mode():
            return _outputs(served, served.vae.decode_mean(_latents(served, request.z)), request.format)

    @app.post("/sample", response_model=schemas.SampleResponse, responses=errors, response_model_exclude_none=True)
    def sample(request: schemas.SampleRequest):
        """n draws z ~ p(z) (reproducible by seed) and their decodings E[x|z]."""
        served = model(request.model)
        with _seeded(request.seed), torch.inference_mode():
            z = served.vae.prior.sample(request.n)  # (n, latent)
        with torch.inference_mode():
            return {"z": z.tolist(), **_outputs(served, served.vae.decode_mean(z), request.format)}


def _add_scoring_routes(app, config: ServeConfig, model, schemas, errors: dict) -> None:
    """POST /reconstruct, /score and /classify: data back through the model."""
    import torch
    from fastapi import HTTPException

    from .images import predict_classes

    @app.post("/reconstruct", response_model=schemas.SampleResponse, responses=errors,
              response_model_exclude_none=True)
    def reconstruct(request: schemas.ReconstructRequest):
        """E[x|z] at the posterior mean z = E[z|x], returned with z."""
        served = model(request.model)
        with torch.inference_mode():
            z = served.vae.encode(_inputs(request, served, config)).mean
            return {"z": z.tolist(), **_outputs(served, served.vae.decode_mean(z), request.format)}

    @app.post("/score", response_model=schemas.ScoreResponse, responses=errors)
    def score(request: schemas.ScoreRequest):
        """Anomaly score per example in nats: -ELBO (k reconstruction draws) or the IWAE bound on -log p(x)."""
        served = model(request.model)
        x = _inputs(request, served, config)
        with _seeded(request.seed), torch.inference_mode():
            if request.method == "iwae":
                scores = -served.vae.log_likelihood(x, k=request.k)
            else:
                scores = -served.vae.elbo(x, n_samples=request.k).total()
        return {"scores": scores.tolist(), "method": request.method, "k": request.k}

    @app.post("/classify", response_model=schemas.ClassifyResponse, responses=errors)
    def classify(request: schemas.Inputs):
        """A semi-supervised (M2) run's q(y|x) per example: the most probable class and every class's probability,
        as `vaekit classify` finds them."""
        served = model(request.model)
        if served.vae.classifier is None:
            raise HTTPException(409, f"model '{served.name}' has no classifier q(y|x): /classify takes a run trained "
                                     "with `vaekit train --semi-supervised` (GET /models shows its classes)")
        with torch.inference_mode():
            found = predict_classes(served.run, _inputs(request, served, config))
        return {"predicted": found.predicted.tolist(), "probabilities": found.probabilities.tolist()}


def _add_middleware(app, config: ServeConfig) -> None:
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["content-type"])
    if "*" not in config.allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)


def _device(served: Served):
    return next(served.vae.parameters()).device


def _version() -> str:
    from .. import __version__

    return __version__


def serve(runs, host: str = "127.0.0.1", port: int = 8000, config: ServeConfig | None = None,
          device: str = "cpu", access_log: bool = False) -> None:
    """Serve `runs` on http://host:port/ until interrupted (`vaekit serve`)."""
    from ..config import check_device

    optional_import("fastapi", "vaekit serve", "fastapi uvicorn")
    uvicorn = optional_import("uvicorn", "vaekit serve", "fastapi uvicorn")
    config = config or ServeConfig()
    config.validate()
    check_device(device)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535 (0: any free port), got {port}")
    if host not in LOOPBACK:
        config = dataclasses.replace(config, allowed_hosts=("*",))
        print(f"vaekit: warning: listening on {host}: the API is reachable from other machines")
    _check_port(host, port)
    app = create_app(runs, config, device)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {', '.join(app.state.models)} at http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=access_log)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}): pass another --port or --host") \
                from None
