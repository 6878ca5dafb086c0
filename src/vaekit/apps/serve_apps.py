"""The other apps' models behind `vaekit serve`: tabular, recommender and text directories.

Each directory's kind is read from its config.json at start (`served_kind`, vaekit.saved's contract) and
its model loaded by vaekit.apps.registry; each kind has one natural call:
POST /tabular/sample (TabularVAE.sample), POST /recommend (recommend.top), POST /text/sample
(apps.text.sample). Core runs keep /encode, /decode, /sample, /reconstruct, /score and /classify.
"""

from dataclasses import dataclass
from types import SimpleNamespace

from ..errors import CheckpointError
from ..saved import EXTENDS, saved_kind, use_instead

# kind served -> the endpoint(s) serving it
ENDPOINTS = {"core": "/encode, /decode, /sample, /reconstruct, /score or /classify", "tabular": "/tabular/sample",
             "recommend": "/recommend", "text": "/text/sample"}
MAX_TEXT = 200  # characters of a client string (item id, user id, column name, category value)
MAX_DRAWS = 100_000  # latent draws of a conditional tabular sample before it gives up (DataError, 422)


def served_kind(folder) -> str:
    """'core', 'tabular', 'recommend' or 'text': the kind of the saved folder (an audio model is served as
    the core run it is); a kind the API does not serve is a CheckpointError naming the commands that do."""
    found = saved_kind(folder)
    kind = EXTENDS.get(found, found)
    if kind not in ENDPOINTS:
        raise CheckpointError(f"{folder}: {use_instead(found)}; `vaekit serve` serves {', '.join(ENDPOINTS)} models")
    return kind


@dataclass
class AppModel:
    """A non-core model behind the API: its public name, kind and the loaded object."""

    name: str
    kind: str
    model: object  # TabularVAE, recommend.Recommender or text.model.TextModel

    def info(self) -> dict:
        info = {"name": self.name, "kind": self.kind, "image": False}
        if self.kind == "tabular":
            info.update(columns=[c.name for c in self.model.transformer.columns],
                        latent_dim=self.model.vae.latent_dim, epochs=len(self.model.history))
        elif self.kind == "recommend":
            n_users, n_items = self.model.data.matrix.shape
            info.update(network=self.model.config.model, n_users=n_users, n_items=n_items,
                        epochs=len(self.model.history))
        else:
            info.update(latent_dim=self.model.config.latent_dim, vocab_size=len(self.model.vocabulary))
        return info


def add_routes(app, config, pick, errors: dict) -> None:
    """POST /tabular/sample, /recommend and /text/sample on `app`; `pick(name, kind)` returns the model
    or raises a 4xx (unknown name, or a model of another kind naming its endpoint)."""
    schemas = _schemas(config)

    @app.post("/tabular/sample", response_model=schemas.TabularSampleResponse, responses=errors)
    def tabular_sample(request: schemas.TabularSampleRequest):
        """n synthetic rows (reproducible by seed), optionally conditioned on categorical/boolean values."""
        import json

        served = pick(request.model, "tabular")
        frame = served.model.sample(request.n, conditions=request.conditions, seed=request.seed,
                                    batch_size=1000, max_draws=MAX_DRAWS)
        # pandas' JSON writer turns NaN/NaT into null, timestamps into ISO strings and numpy scalars into numbers.
        return {"columns": [str(c) for c in frame.columns],
                "rows": json.loads(frame.to_json(orient="records", date_format="iso"))}

    @app.post("/recommend", response_model=schemas.RecommendResponse, responses=errors)
    def recommend_top(request: schemas.RecommendRequest):
        """The k best items for a known user, or for a new user given their items (no retraining)."""
        from ..recommend import api as recommend

        served = pick(request.model, "recommend")
        items = None if request.items is None else [str(item) for item in request.items]
        best = recommend.top(served.model, user=request.user, items=items, k=request.k,
                             exclude_seen=request.exclude_seen)
        return {"items": [{"item": item, "score": score} for item, score in best]}

    @app.post("/text/sample", response_model=schemas.TextSampleResponse, responses=errors)
    def text_sample(request: schemas.TextSampleRequest):
        """n sentences decoded from z ~ p(z) (reproducible by seed): temperature sampling, greedy or beam."""
        import torch

        from . import text

        served = pick(request.model, "text")
        with torch.inference_mode():
            sentences = text.sample(served.model, request.n, request.method, request.temperature,
                                    request.beam_size, request.seed)
        return {"sentences": sentences}


def _schemas(config) -> SimpleNamespace:
    """The three endpoints' request and response models, bounded by `config` (a ServeConfig)."""
    # One flat list of declarations, easier to check against the endpoints read together than split.
    from typing import Annotated, Literal

    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        StrictBool,
        StrictInt,
        model_validator,
    )

    Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    Number = Annotated[float, Field(allow_inf_nan=False)]
    Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class TabularSampleRequest(Strict):
        model: str = Field(description="a tabular model from GET /models")
        n: int = Field(16, ge=1, le=config.max_batch, description="rows to draw")
        conditions: dict[Text, StrictBool | StrictInt | Number | Text] | None = Field(
            None, max_length=32, description="{column: value} on categorical or boolean columns")
        seed: Seed = 0

    class TabularSampleResponse(BaseModel):
        columns: list[str]
        rows: list[dict] = Field(description="one record {column: value} per row; missing values are null")

    class RecommendRequest(Strict):
        model: str = Field(description="a recommender from GET /models")
        user: Text | None = Field(None, description="a known user id (their stored interactions)")
        items: list[Text | StrictInt] | None = Field(
            None, min_length=1, max_length=1000, description="item ids of a new user (unknown ids are ignored)")
        k: int = Field(10, ge=1, le=config.max_batch, description="items to return")
        exclude_seen: bool = Field(True, description="leave out the user's own items")

        @model_validator(mode="after")
        def _one_input(self):
            if (self.user is None) == (self.items is None):
                raise ValueError("send exactly one of 'user' (a known id) or 'items' (a new user's item ids)")
            return self

    class Recommendation(BaseModel):
        item: str
        score: float

    class RecommendResponse(BaseModel):
        items: list[Recommendation] = Field(description="best first")

    class TextSampleRequest(Strict):
        model: str = Field(description="a text model from GET /models")
        n: int = Field(8, ge=1, le=config.max_batch)
        method: Literal["sample", "greedy", "beam"] = "sample"
        temperature: float = Field(1.0, gt=0, le=10, allow_inf_nan=False, description="for method=sample")
        beam_size: int = Field(5, ge=1, le=16, description="for method=beam")
        seed: Seed = 0

    class TextSampleResponse(BaseModel):
        sentences: list[str]

    return SimpleNamespace(TabularSampleRequest=TabularSampleRequest, TabularSampleResponse=TabularSampleResponse,
                           RecommendRequest=RecommendRequest, RecommendResponse=RecommendResponse,
                           TextSampleRequest=TextSampleRequest, TextSampleResponse=TextSampleResponse)
