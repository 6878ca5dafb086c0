"""The JSON bodies of `vaekit serve`'s core endpoints (/models, /encode, /decode, /sample, /reconstruct,
/score, /classify) as pydantic models. They are made per app because their bounds come from its ServeConfig, and
inside functions so that pydantic is imported only when an app is made."""

from types import SimpleNamespace


def core_schemas(config) -> SimpleNamespace:
    """The request and response models, by class name (`schemas.Inputs`, `schemas.ScoreResponse`, ...)."""
    return SimpleNamespace(**_requests(config), **_responses())


def _requests(config) -> dict:
    from typing import Annotated, Literal, Optional

    from pydantic import BaseModel, ConfigDict, Field, model_validator

    batch = dict(min_length=1, max_length=config.max_batch)
    Value = Annotated[float, Field(allow_inf_nan=False)]
    Latent = Annotated[float, Field(ge=-config.latent_limit, le=config.latent_limit, allow_inf_nan=False)]
    Format = Literal["png", "array"]

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class Inputs(Strict):
        model: str = Field(description="a name from GET /models")
        images: Optional[list[str]] = Field(None, **batch, description="PNG files, base64 (image models)")
        x: Optional[list[Annotated[list[Value], Field(min_length=1, max_length=config.max_values)]]] = Field(
            None, **batch, description="examples flattened to rows of prod(data_shape) values")
        resize: bool = Field(False, description="resize images to the model's size instead of rejecting them")

        @model_validator(mode="after")
        def _one_input(self):
            if (self.images is None) == (self.x is None):
                raise ValueError("send exactly one of 'images' (base64 PNG) or 'x' (flat arrays)")
            return self

    class DecodeRequest(Strict):
        model: str
        z: list[Annotated[list[Latent], Field(min_length=1, max_length=4096)]] = Field(
            ..., **batch, description="latent codes, rows of latent_dim values")
        format: Format = Field("png", description="png (image models) or array")

    class SampleRequest(Strict):
        model: str
        n: int = Field(16, ge=1, le=config.max_batch)
        seed: int = Field(0, ge=0, le=2**63 - 1)
        format: Format = "png"

    class ReconstructRequest(Inputs):
        format: Format = "png"

    class ScoreRequest(Inputs):
        method: Literal["elbo", "iwae"] = Field("elbo", description="negative ELBO, or IWAE estimate of -log p(x)")
        k: int = Field(100, ge=1, le=config.max_k, description="reconstruction draws (elbo) or importance samples")
        seed: int = Field(0, ge=0, le=2**63 - 1)

    return dict(Inputs=Inputs, DecodeRequest=DecodeRequest, SampleRequest=SampleRequest,
                ReconstructRequest=ReconstructRequest, ScoreRequest=ScoreRequest)


def _responses() -> dict:
    from typing import Literal, Optional

    from pydantic import BaseModel, Field

    class Outputs(BaseModel):
        images: Optional[list[str]] = Field(None, description="base64 PNG per example (format=png)")
        x: Optional[list[list[float]]] = Field(None, description="flat E[x|z] per example (format=array)")

    class EncodeResponse(BaseModel):
        loc: list[list[float]] = Field(description="posterior means E[z|x], (batch, latent_dim)")
        scale: list[list[float]] = Field(description="posterior standard deviations, (batch, latent_dim)")

    class SampleResponse(Outputs):
        z: list[list[float]]

    class ScoreResponse(BaseModel):
        scores: list[float] = Field(description="anomaly score per example in nats: higher is more unusual")
        method: str
        k: int
        unit: str = "nats"

    class ClassifyResponse(BaseModel):
        predicted: list[int] = Field(description="argmax_y q(y|x) per example")
        probabilities: list[list[float]] = Field(description="q(y|x) per example, (batch, classes)")

    class ModelInfo(BaseModel):
        name: str
        kind: Literal["core", "tabular", "recommend", "text"] = Field(
            description="core: /encode /decode /sample /reconstruct /score (and /classify with classes); "
                        "tabular: /tabular/sample; "
                        "recommend: /recommend; text: /text/sample")
        image: bool
        data_shape: Optional[list[int]] = None
        latent_dim: Optional[int] = None
        likelihood: Optional[str] = None
        network: Optional[str] = None
        prior: Optional[str] = None
        dataset: Optional[str] = None
        epochs: Optional[int] = None
        val_neg_elbo: Optional[float] = None
        classes: Optional[int] = Field(None, description="core, semi-supervised (M2): the classes /classify predicts")
        columns: Optional[list[str]] = Field(None, description="tabular: the table's columns")
        n_users: Optional[int] = Field(None, description="recommend: training users")
        n_items: Optional[int] = Field(None, description="recommend: items in the catalogue")
        vocab_size: Optional[int] = Field(None, description="text: words in the vocabulary")

    return dict(Outputs=Outputs, EncodeResponse=EncodeResponse, SampleResponse=SampleResponse,
                ScoreResponse=ScoreResponse, ClassifyResponse=ClassifyResponse, ModelInfo=ModelInfo)
