"""`vaekit serve`: the API's answers against the VAE's own methods, strict 4xx validation, the safety
limits, schema fuzzing (schemathesis), the CLI as a real server on 127.0.0.1, and the page in headless
Chromium (skipped when chromium or playwright is missing)."""

import base64
import io
import json
import re
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from vaekit.apps.serve import ServeConfig, create_app, load_models, png_to_tensor, tensor_to_png  # noqa: E402
from vaekit.cli import main  # noqa: E402
from vaekit.errors import CheckpointError, ConfigError  # noqa: E402
from vaekit.apps.images import load_run, train  # noqa: E402
from vaekit.data.splits import load_splits  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "digits"
    train(out, data="digits", epochs=1, hidden=(32,), latent_dim=2, progress=False)
    return out


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir, device="cpu")


@pytest.fixture(scope="module")
def client(run_dir):
    return TestClient(create_app([run_dir]), base_url=LOCAL)


@pytest.fixture(scope="module")
def digits(run):
    return load_splits(run.data, run.train.seed).x_test[:8]  # (8, 1, 8, 8) in [0, 1]


def _png(array: np.ndarray) -> str:
    """(H, W) floats in [0, 1] -> base64 PNG."""
    buffer = io.BytesIO()
    Image.fromarray((array * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_models_lists_each_run_by_name_and_never_its_path(client, run_dir):
    response = client.get("/models")
    assert response.status_code == 200
    (info,) = response.json()
    assert (info["name"], info["data_shape"], info["latent_dim"], info["image"]) == ("digits", [1, 8, 8], 2, True)
    assert str(run_dir) not in response.text and str(run_dir.parent) not in response.text


def test_decode_is_the_decoder_mean_as_8_bit_png(client, run):
    z = [[0.0, 0.0], [1.5, -2.0]]
    response = client.post("/decode", json={"model": "digits", "z": z})
    assert response.status_code == 200
    expected = run.vae.decode_mean(torch.tensor(z)).detach().numpy()  # (2, 1, 8, 8)
    for b64, mean in zip(response.json()["images"], expected):
        assert np.array_equal(_pixels(b64), (mean[0] * 255).round().astype(np.uint8))
    arrays = client.post("/decode", json={"model": "digits", "z": z, "format": "array"}).json()["x"]
    np.testing.assert_allclose(np.array(arrays), expected.reshape(2, -1), atol=1e-6)


def test_png_and_array_inputs_encode_alike(client, run, digits):
    quantized = (digits * 255).round() / 255
    by_png = client.post("/encode", json={"model": "digits", "images": [_png(x[0].numpy()) for x in digits]}).json()
    by_array = client.post("/encode", json={"model": "digits", "x": quantized.reshape(8, -1).tolist()}).json()
    qz = run.vae.encode(quantized)
    np.testing.assert_allclose(by_png["loc"], qz.mean.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(by_array["loc"], by_png["loc"], atol=1e-6)
    np.testing.assert_allclose(by_array["scale"], qz.stddev.detach().numpy(), atol=1e-5)


def test_reconstruct_decodes_the_posterior_mean(client, digits):
    body = {"model": "digits", "x": digits.reshape(8, -1).tolist(), "format": "array"}
    rec = client.post("/reconstruct", json=body).json()
    enc = client.post("/encode", json={k: v for k, v in body.items() if k != "format"}).json()
    np.testing.assert_allclose(rec["z"], enc["loc"], atol=1e-6)
    decoded = client.post("/decode", json={"model": "digits", "z": rec["z"], "format": "array"}).json()
    np.testing.assert_allclose(rec["x"], decoded["x"], atol=1e-6)


def test_sample_is_reproducible_by_seed_and_decodes_its_z(client):
    a, b, c = (client.post("/sample", json={"model": "digits", "n": 5, "seed": s}).json() for s in (7, 7, 8))
    assert a == b and a["z"] != c["z"]
    assert np.array(a["z"]).shape == (5, 2) and len(a["images"]) == 5
    assert client.post("/decode", json={"model": "digits", "z": a["z"]}).json()["images"] == a["images"]


def test_scores_are_seeded_bounds_and_flag_noise(client, run, digits):
    x = digits.reshape(8, -1).tolist()
    noise = torch.rand(8, 64, generator=torch.Generator().manual_seed(0)).tolist()

    def score(rows, **options):
        response = client.post("/score", json={"model": "digits", "x": rows, **options})
        assert response.status_code == 200, response.text
        return np.array(response.json()["scores"])

    elbo = score(x, method="elbo", k=200)
    assert np.array_equal(elbo, score(x, method="elbo", k=200))  # seeded: same request, same answer
    with torch.random.fork_rng():
        torch.manual_seed(0)
        expected = -run.vae.elbo(digits, n_samples=200).total().detach().numpy()
    np.testing.assert_allclose(elbo, expected, rtol=1e-5)
    iwae = score(x, method="iwae", k=500)
    assert iwae.mean() < elbo.mean()  # the IWAE bound is tighter: -log p(x) <= -ELBO
    assert score(noise).mean() > elbo.mean() + 5  # uniform noise is far less likely than digits


@pytest.fixture(scope="module")
def m2_dir(tmp_path_factory):
    """A semi-supervised (M2) run with 50 labels, one epoch on digits: its classifier is what /classify serves."""
    out = tmp_path_factory.mktemp("serve") / "m2"
    train(out, data="digits", epochs=1, network="mlp", hidden=(16,), latent_dim=2, batch_size=128, progress=False,
          semi_supervised=True, labelled=50)
    return out


def test_classify_agrees_with_vaekit_classify_and_needs_a_classifier(m2_dir, run_dir):
    import csv

    from vaekit.apps.images import classify

    m2 = load_run(m2_dir, device="cpu")
    digits = load_splits(m2.data, m2.train.seed).x_test[:8]  # what `vaekit classify` reads first
    both = TestClient(create_app([m2_dir, run_dir]), base_url=LOCAL)
    assert {m["name"]: m["classes"] for m in both.get("/models").json()} == {"m2": 10, "digits": None}
    response = both.post("/classify", json={"model": "m2", "x": digits.reshape(8, -1).tolist()})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = list(csv.DictReader(classify(m2_dir).path.open()))[:8]  # the same first 8 test images
    assert answer["predicted"] == [int(row["predicted"]) for row in expected]
    confidence = [p[c] for p, c in zip(answer["probabilities"], answer["predicted"])]
    np.testing.assert_allclose(confidence, [float(row["probability"]) for row in expected], rtol=1e-5)
    np.testing.assert_allclose(np.sum(answer["probabilities"], 1), 1, rtol=1e-5)
    assert np.array(answer["probabilities"]).shape == (8, 10)
    refused = both.post("/classify", json={"model": "digits", "x": digits.reshape(8, -1).tolist()})
    assert refused.status_code == 409 and "--semi-supervised" in refused.json()["detail"]
    assert "\n" not in refused.json()["detail"] and str(run_dir) not in refused.text


def _jpeg() -> str:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


BAD = [  # (path, body, status, words the message must hold)
    ("/decode", {"model": "digits", "z": [[0, 0, 0]]}, 422, "latent_dim 2"),
    ("/decode", {"model": "nope", "z": [[0, 0]]}, 404, "unknown model 'nope'"),
    ("/decode", {"model": "digits", "z": [[1e6, 0]]}, 422, "less than or equal to 50"),
    ("/decode", {"model": "digits", "z": [[0, 0]] * 65}, 422, "at most 64"),
    ("/decode", {"model": "digits", "z": [[0, 0]], "path": "/etc/passwd"}, 422, "Extra inputs"),
    ("/decode", {"model": "digits", "z": []}, 422, "at least 1"),
    ("/encode", {"model": "digits"}, 422, "exactly one of"),
    ("/encode", {"model": "digits", "x": [[0] * 64], "images": [""]}, 422, "exactly one of"),
    ("/encode", {"model": "digits", "images": ["/etc/passwd"]}, 422, "not valid base64"),
    ("/encode", {"model": "digits", "images": ["aGVsbG8="]}, 422, "not a PNG"),
    ("/encode", {"model": "digits", "images": [_jpeg()]}, 422, "not a PNG"),
    ("/encode", {"model": "digits", "images": [_png(np.zeros((28, 28)))]}, 422, "28x28 but the model takes 8x8"),
    ("/encode", {"model": "digits", "x": [[0] * 63]}, 422, "63 values"),
    ("/score", {"model": "digits", "x": [[2.0] * 64]}, 422, "Bernoulli"),
    ("/score", {"model": "digits", "x": [[0] * 64], "k": 10**6}, 422, "less than or equal to 1000"),
    ("/score", {"model": "digits", "x": [[0] * 64], "method": "mse"}, 422, "'elbo' or 'iwae'"),
    ("/sample", {"model": "digits", "n": 0}, 422, "greater than or equal to 1"),
    ("/sample", {"model": "digits", "seed": -1}, 422, "greater than or equal to 0"),
]


@pytest.mark.parametrize("path, body, status, words", BAD, ids=[f"{p}-{w}" for p, _, _, w in BAD])
def test_bad_requests_get_4xx_saying_what_is_wrong(client, path, body, status, words):
    response = client.post(path, json=body)
    assert response.status_code == status
    assert words in json.dumps(response.json()["detail"])


def test_non_finite_numbers_and_broken_json_are_422(client):
    for text in ('{"model": "digits", "z": [[NaN, 0]]}', '{"model": "digits", "z": [[Infinity, 0]]}', '{"model": '):
        assert client.post("/decode", content=text, headers={"content-type": "application/json"}).status_code == 422


def test_resize_is_opt_in(client):
    body = {"model": "digits", "images": [_png(np.full((28, 28), 0.5))], "resize": True}
    loc = client.post("/encode", json=body).json()["loc"]
    assert np.array(loc).shape == (1, 2)


def test_body_cap_by_length_and_by_stream(run_dir):
    small = TestClient(create_app([run_dir], ServeConfig(max_body_bytes=1000)), base_url=LOCAL)
    body = json.dumps({"model": "digits", "z": [[0.123456789, -0.123456789]] * 50}).encode()
    assert len(body) > 1000
    response = small.post("/decode", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "1000 bytes" in response.json()["detail"]
    chunks = (body[i:i + 100] for i in range(0, len(body), 100))  # no Content-Length: chunked
    assert small.post("/decode", content=chunks, headers={"content-type": "application/json"}).status_code == 413
    assert small.post("/decode", json={"model": "digits", "z": [[0, 0]]}).status_code == 200


def test_cors_is_off_unless_an_origin_is_named(run_dir, client):
    preflight = {"origin": "http://elsewhere.example", "access-control-request-method": "POST"}
    assert "access-control-allow-origin" not in client.options("/decode", headers=preflight).headers
    opened = TestClient(create_app([run_dir], ServeConfig(cors_origins=("http://elsewhere.example",))),
                        base_url=LOCAL)
    allowed = opened.options("/decode", headers=preflight).headers
    assert allowed["access-control-allow-origin"] == "http://elsewhere.example"


def test_foreign_host_header_is_refused(run_dir):
    foreign = TestClient(create_app([run_dir]), base_url="http://attacker.example")
    assert foreign.get("/models").status_code == 400


def test_page_and_openapi_schema(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="decoded"' in page.text
    empty = re.findall(r"<img(?![^>]*\bsrc=)[^>]*>", page.text)  # images whose picture comes later
    assert len(empty) == 3 and "img:not([src]) { visibility: hidden; }" in page.text  # so no broken-image icon
    assert "default-src 'self'" in page.headers["content-security-policy"]
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/models", "/encode", "/decode", "/sample", "/reconstruct", "/score", "/classify",
                                    "/tabular/sample", "/recommend", "/text/sample"}
    assert client.get("/docs").status_code == 404  # no page that pulls scripts from a CDN


def test_png_codec_round_trips():
    image = torch.rand(3, 5, 7)
    back = png_to_tensor(tensor_to_png(image), (3, 5, 7))
    assert back.shape == (3, 5, 7) and float((back - image).abs().max()) <= 0.5 / 255 + 1e-6


def test_load_models_names_and_mistakes(run_dir, tmp_path):
    assert list(load_models([f"first={run_dir}", f"second={run_dir}"])) == ["first", "second"]
    with pytest.raises(ConfigError, match="two models are named"):
        load_models([run_dir, run_dir])
    with pytest.raises(ConfigError, match="letters, digits"):
        load_models([f"a b={run_dir}"])
    with pytest.raises(CheckpointError, match="not found"):
        load_models([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="max-batch"):
        create_app([run_dir], ServeConfig(max_batch=0))


# The other apps' models: kind read from each directory's config.json, one natural call each.
@pytest.fixture(scope="module")
def app_dirs(tmp_path_factory, run_dir):
    """Tiny tabular, recommender and text models, fitted through their Python APIs (a few seconds)."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("scipy")
    from vaekit import recommend
    from vaekit.apps import text
    from vaekit.tabular import TabularVAE

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("apps")
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "blue"], 120)
    table = pd.DataFrame({"colour": colour, "size": np.where(colour == "red", 10.0, -5.0) + rng.normal(0, 1, 120),
                          "flag": rng.random(120) < 0.3})
    TabularVAE(epochs=3, batch_size=40, latent_dim=2, hidden=(16,), seed=0).fit(table).save(root / "table")
    lines = ["user_id,item_id"] + [f"u{u},i{(u % 2) * 10 + i}" for u in range(60)
                                   for i in rng.choice(10, 6, replace=False)]
    (root / "log.csv").write_text("\n".join(lines) + "\n")
    recommend.fit(root / "log.csv", root / "rec", model="vae", epochs=2, hidden=(8,), latent_dim=2, batch_size=32,
                  seed=0, device="cpu")
    words = ["good", "bad", "film", "plot", "was", "the"]
    sentences = [" ".join(rng.choice(words, 4)) for _ in range(40)]
    text.fit(sentences, root / "text", log=lambda line: None, epochs=1, embed_dim=8, hidden=8, latent_dim=2,
             progress=False, device="cpu")
    return {"digits": run_dir, "table": root / "table", "rec": root / "rec", "text": root / "text"}


@pytest.fixture(scope="module")
def app_client(app_dirs):
    return TestClient(create_app([f"{name}={folder}" for name, folder in app_dirs.items()]), base_url=LOCAL)


def test_models_lists_every_kind(app_client, app_dirs):
    from vaekit.apps.serve_apps import served_kind

    assert {name: served_kind(folder) for name, folder in app_dirs.items()} == \
        {"digits": "core", "table": "tabular", "rec": "recommend", "text": "text"}
    response = app_client.get("/models")
    assert response.status_code == 200
    info = {m["name"]: m for m in response.json()}
    assert {name: m["kind"] for name, m in info.items()} == \
        {"digits": "core", "table": "tabular", "rec": "recommend", "text": "text"}
    assert info["table"]["columns"] == ["colour", "size", "flag"] and info["rec"]["n_items"] == 20
    assert info["text"]["latent_dim"] == 2 and not any(m["image"] for n, m in info.items() if n != "digits")
    assert str(app_dirs["table"].parent) not in response.text


def test_tabular_sample_returns_seeded_records_and_honours_conditions(app_client):
    body = {"model": "table", "n": 5, "seed": 3}
    first = app_client.post("/tabular/sample", json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["columns"] == ["colour", "size", "flag"] and len(answer["rows"]) == 5
    row = answer["rows"][0]
    assert row["colour"] in ("red", "blue") and isinstance(row["size"], float) and isinstance(row["flag"], bool)
    assert app_client.post("/tabular/sample", json=body).json() == answer
    blue = app_client.post("/tabular/sample", json={**body, "conditions": {"colour": "blue"}}).json()["rows"]
    assert [r["colour"] for r in blue] == ["blue"] * 5
    bad = app_client.post("/tabular/sample", json={**body, "conditions": {"size": 1.0}})
    assert bad.status_code == 422 and "cannot condition on 'size'" in bad.text


def test_recommend_for_a_known_and_a_new_user(app_client):
    known = app_client.post("/recommend", json={"model": "rec", "user": "u0", "k": 3})
    assert known.status_code == 200, known.text
    items = known.json()["items"]
    assert len(items) == 3 and all(set(i) == {"item", "score"} for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    new = app_client.post("/recommend", json={"model": "rec", "items": ["i1", "i2"], "k": 20}).json()["items"]
    assert {"i1", "i2"}.isdisjoint(i["item"] for i in new) and len(new) == 18  # seen items left out
    for body, words in [({"model": "rec", "user": "nobody"}, "unknown user"),
                        ({"model": "rec", "items": ["zz"]}, "none of the items"),
                        ({"model": "rec"}, "exactly one of"),
                        ({"model": "rec", "user": "u0", "k": 65}, "less than or equal"),
                        ({"model": "rec", "user": "x" * 201}, "at most 200")]:
        response = app_client.post("/recommend", json=body)
        assert response.status_code == 422 and words in response.text, (body, response.text)


def test_text_sample_is_seeded_sentences(app_client):
    body = {"model": "text", "n": 3, "seed": 1, "temperature": 0.7}
    response = app_client.post("/text/sample", json=body)
    assert response.status_code == 200, response.text
    sentences = response.json()["sentences"]
    assert len(sentences) == 3 and all(isinstance(s, str) for s in sentences)
    assert app_client.post("/text/sample", json=body).json()["sentences"] == sentences
    assert app_client.post("/text/sample", json={"model": "text", "method": "beam", "n": 2}).status_code == 200
    assert app_client.post("/text/sample", json={**body, "temperature": 0}).status_code == 422
    assert app_client.post("/text/sample", json={**body, "n": 65}).status_code == 422


@pytest.mark.parametrize("path, body, endpoint", [
    ("/tabular/sample", {"model": "rec"}, "/recommend"),
    ("/recommend", {"model": "table", "user": "u0"}, "/tabular/sample"),
    ("/text/sample", {"model": "digits"}, "/encode"),
    ("/decode", {"model": "text", "z": [[0, 0]]}, "/text/sample"),
    ("/score", {"model": "table", "x": [[0.0]]}, "/tabular/sample"),
    ("/classify", {"model": "rec", "x": [[0.0]]}, "/recommend"),
])
def test_wrong_kind_is_409_naming_the_right_endpoint(app_client, path, body, endpoint):
    response = app_client.post(path, json=body)
    assert response.status_code == 409 and endpoint in response.json()["detail"], response.text


def test_unknown_fields_are_rejected_on_app_endpoints(app_client):
    for path, body in [("/tabular/sample", {"model": "table", "path": "/etc"}),
                       ("/recommend", {"model": "rec", "user": "u0", "folder": "x"}),
                       ("/text/sample", {"model": "text", "n": 1, "extra": 1})]:
        response = app_client.post(path, json=body)
        assert response.status_code == 422 and "extra" in response.text, (path, response.text)


# Schema fuzzing: every operation, bounded examples; no request may produce a 5xx.
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(app_dirs):
    app = create_app([f"{name}={folder}" for name, folder in app_dirs.items()],
                     ServeConfig(allowed_hosts=("*",), max_k=50))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@fuzzed.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_give_5xx(case):
    case.call_and_validate(checks=[not_a_server_error])


# The CLI as a real server on 127.0.0.1 (also the browser test's server).
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(run_dir):
    import httpx

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "vaekit", "serve", f"digits={run_dir}", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                pytest.fail(f"vaekit serve exited: {process.stdout.read()}")
            try:
                httpx.get(url + "/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, port
    finally:
        process.terminate()
        process.wait(10)


def test_cli_serves_on_loopback_and_refuses_a_busy_port(server, run_dir, capsys):
    import httpx

    url, port = server
    assert [m["name"] for m in httpx.get(url + "/models").json()] == ["digits"]
    assert httpx.post(url + "/decode", json={"model": "digits", "z": [[0, 0]]}).status_code == 200
    assert main(["serve", str(run_dir), "--port", str(port)]) == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", str(run_dir.parent / "missing"), "--port", str(_free_port())]) == 2
    assert "not found" in capsys.readouterr().err


def _wait(page, expression: str, timeout: float = 15):
    """Poll a JS expression from Python (wait_for_function would need eval, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def test_page_in_headless_chromium(server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    url, _ = server
    digit = tmp_path / "digit.png"
    Image.fromarray((np.eye(8)[::-1] * 255).astype(np.uint8)).resize((64, 64)).save(digit)
    other = tmp_path / "other.png"
    yy, xx = np.mgrid[-1:1:8j, -1:1:8j]
    Image.fromarray((np.abs(np.hypot(xx, yy) - 0.7) < 0.3).astype(np.uint8) * 255).save(other)  # a ring
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=15000)
        assert page.locator("#samples img").count() == 16
        assert not page.is_visible("#original") and not page.is_visible("#recon")  # nothing dropped yet: no icons
        before = page.get_attribute("#decoded", "src")
        slider = page.locator("input.latent[data-dim='0']")
        box = slider.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)
        _wait(page, f"document.getElementById('decoded').src !== {json.dumps(before)}")
        assert float(slider.input_value()) > 2
        seed = page.text_content("#seed")
        page.click("#reseed")
        _wait(page, f"document.getElementById('seed').textContent !== {json.dumps(seed)}")
        page.set_input_files("#file", str(digit))
        _wait(page, "document.getElementById('score').textContent.includes('nats')")
        assert page.is_visible("#original") and page.is_visible("#recon")
        page.set_input_files("#file", str(other))
        _wait(page, "document.querySelectorAll('#strip img').length === 10")
        shot = Path(os.environ.get("VAEKIT_SERVE_SCREENSHOT", tmp_path / "serve.png"))
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert not errors, errors
    assert shot.stat().st_size > 10_000
