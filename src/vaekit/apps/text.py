"""Text: a sentence VAE (Bowman et al. 2016) for generation, reconstruction, interpolation, sentence
features and few-label classification. One API function per `vaekit text` verb; text_files.py reads and
writes what the verbs do.

A model folder holds config.json (kind 'text'), vocab.json, model.safetensors, metrics.jsonl
and diagnostics.jsonl (KL and active units per epoch, to watch for posterior collapse).
"""

from __future__ import annotations

from pathlib import Path

from ..config import check_count
# The classifier behind classify and what the verbs return are this API too.
from ..text.classifier import (SELF_TRAINING_THRESHOLD, Classification, Predictions, fit_latent_classifier,
                               latent_classifier)


def as_model(model):
    """The TextModel itself, or the one saved in that folder."""
    from ..text.model import TextModel, load_text_model

    return model if isinstance(model, TextModel) else load_text_model(model)


def sentences_from(source, column: str | None = None) -> list[str]:
    """The list itself, or the sentences of a file: one per line, or the `column` of a CSV/TSV."""
    from ..data.text import read_sentences

    return list(source) if isinstance(source, (list, tuple)) else read_sentences(source, column)


def _configs(options: dict):
    """(TextConfig, TrainConfig) with keyword options routed to the one that owns each."""
    from ..config import route
    from ..text.config import TEXT_TRAIN, TextConfig

    return route(options, TextConfig(), TEXT_TRAIN)


def fit(corpus, out: str | Path, val=None, column: str | None = None, vocabulary=None, log=print, labelled=None,
        label_column: str | None = None, resume: bool = False, overwrite: bool = False, **options):
    """Fit a sentence VAE on `corpus` (a text file with one sentence per line, a CSV/TSV with `column`,
    or a list of strings) and write the model folder `out`. `options`: any TextConfig or TrainConfig
    field (latent_dim=16, epochs=5, word_dropout=0.3, kl_schedule='cyclical', free_bits=0.5, ...).
    `vocabulary`: a text.Vocabulary to use instead of one built from the corpus (e.g. PTB's standard 10k).
    `labelled`: a few labelled sentences ('sentence<TAB>label' lines, a CSV with `column` and `label_column`,
    or (sentences, labels)) that join the training text and teach p(y|z) with it: the semi-supervised VAE of
    vaekit.semisupervised, whose latent space the labels shape; `predict` then labels new sentences.
    resume=True continues the fit stopped in `out` from its last epoch (optimizer and random state included),
    on the same corpus, --val and labels; only epochs, device, early_stopping and time_limit may change.
    Otherwise a folder `out` holding a saved model is refused unless `overwrite`, which replaces it.
    Returns the TextModel with the best validation weights loaded."""
    # Long: a fit's steps in their order (configs, sentences, labels, model, folder, KL schedule, Trainer), each a call.
    import torch

    from ..checkpoint import MODEL_FILE, load_weights, read_json
    from ..data.text import TokenBatches
    from ..devices import select_device
    from ..errors import ConfigError, DataError
    from ..limits import build_within_memory
    from ..saved import clear_folder
    from ..semisupervised import LabelledVAE
    from ..text.model import TextModel, build_text_vae, cyclical_beta
    from ..training import Trainer

    if label_column is not None and labelled is None:
        raise ConfigError("--label-column names the label column of a CSV --labelled file: add --labelled")
    text, train, saved = _fit_configs(out, options, resume, overwrite)
    vocabulary = saved.vocabulary if saved else vocabulary
    select_device(train.device)
    torch.manual_seed(train.seed)
    sentences, val_sentences = _split(corpus, val, column, text.val_fraction, train.seed)
    if len(sentences) < 2:
        raise DataError(f"the corpus has {len(sentences)} training sentence(s): give at least 2")
    labelled = _labelled(labelled, column, label_column) if labelled is not None else None
    vocabulary, x_train, x_val = _encode(sentences, val_sentences, labelled, vocabulary, text, log)
    vae = build_within_memory(lambda: build_text_vae(text, len(vocabulary)), "a sentence VAE of these sizes",
                              "lower --embed-dim, --hidden, --latent-dim or --max-vocab")
    model = TextModel(vae, vocabulary, text, train, Path(out))
    data = TokenBatches(x_train, by_length=text.batch_by_length)
    if labelled is not None:
        model.classes, data = _with_labels(data, vocabulary, *labelled, text)
        model.labelled = LabelledVAE(model.vae, len(model.classes), text.label_weight)
    if resume and model.classes != saved.classes:
        raise ConfigError(f"{out} was fitted with labels {list(saved.classes) or 'none'}, but this resume has "
                          f"{list(model.classes) or 'none'}: pass the same --labelled file")
    if not resume:
        clear_folder(out, overwrite)
    model.save(out)
    schedule = None
    if text.kl_schedule == "cyclical":
        schedule = cyclical_beta(train.beta, train.epochs * -(-len(data) // min(train.batch_size, len(data))),
                                 text.kl_cycles)
    diagnose = _Diagnostics(model, x_val if x_val is not None else TokenBatches(x_train[:1000]), Path(out), log)
    trainer = Trainer(model.trained, train, run_dir=out, on_epoch=diagnose, kl_schedule=schedule)
    if resume:
        trainer.resume()
        diagnose.rows = [row for row in read_json(Path(out) / DIAGNOSTICS_FILE) if row["epoch"] <= trainer.epoch]
    trainer.fit(data, x_val)
    load_weights(model.trained, Path(out) / MODEL_FILE)
    model.trained.eval()
    return model


def _fit_configs(out, options: dict, resume: bool, overwrite: bool):
    """(TextConfig, TrainConfig, the saved TextModel without weights or None): a resume's from its folder, with
    what may change routed from `options`; a new fit's from `options`, once `out` may be written."""
    from ..checkpoint import CONFIG_FILE
    from ..config import resumed_train_config
    from ..errors import CheckpointError
    from ..saved import check_new_folder
    from ..text.model import load_text_model

    if not resume:
        text, train = _configs(options)
        check_new_folder(out, overwrite, resume=True)
        return text, train, None
    if not (Path(out) / CONFIG_FILE).exists():
        raise CheckpointError(f"nothing to resume: {out}/{CONFIG_FILE} not found; drop --resume to start a new fit")
    saved = load_text_model(out, weights=False)  # the checkpoint holds the weights to resume
    return saved.config, resumed_train_config((saved.config, saved.train), saved.train, options), saved


def _encode(sentences: list[str], val_sentences: list[str], labelled, vocabulary, text, log):
    """(the vocabulary, given or built from the training and labelled sentences; (N, max_len) training ids;
    the validation TokenBatches or None), once the padded ids are known to fit in memory."""
    from ..data.text import TokenBatches, Vocabulary
    from ..limits import check_memory

    check_memory(8 * text.max_len * (len(sentences) + len(val_sentences) + len(labelled[0] if labelled else [])),
                 f"{len(sentences)} sentences padded to --max-len {text.max_len} tokens", "lower --max-len")
    vocabulary = vocabulary or Vocabulary.build(sentences + (labelled[0] if labelled else []), text.tokenizer,
                                                text.max_vocab, text.min_count, text.lowercase)
    x_train, cut = vocabulary.encode(sentences, text.max_len)
    if cut:
        log(f"note: {cut} of {len(sentences)} sentences exceed --max-len {text.max_len} tokens and were cut")
    return vocabulary, x_train, (TokenBatches(vocabulary.encode(val_sentences, text.max_len)[0])
                                 if val_sentences else None)


def _split(corpus, val, column: str | None, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, validation) sentences: `val`'s if given, else a random `val_fraction` of the corpus."""
    import torch

    sentences = sentences_from(corpus, column)
    if val is not None:
        return sentences, sentences_from(val, column)
    order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(len(sentences) * val_fraction)
    return [sentences[i] for i in order[n_val:]], [sentences[i] for i in order[:n_val]]


DIAGNOSTICS_FILE = "diagnostics.json"


class _Diagnostics:
    """The Trainer's on_epoch for a sentence VAE: KL, active units on up to 1,000 probe sentences and -ELBO,
    written to diagnostics.json after every epoch and logged as one line."""

    def __init__(self, model, probe, out: Path, log):
        self.model, self.probe, self.out, self.log = model, probe, out, log
        self.rows: list[dict] = []

    def __call__(self, row: dict) -> None:
        from ..data.text import TokenBatches
        from ..evaluation import active_units
        from ..io import write_json
        from ..text.model import latent_means

        self.model.vae.eval()
        units = active_units(latent_means(self.model.vae, TokenBatches(self.probe.ids[:1000])))
        kl = row.get("val_kl", row["kl"])
        self.rows.append({"epoch": row["epoch"], "beta": row["beta"], "kl": kl, "active_units": units,
                          "neg_elbo": row.get("val_neg_elbo", row["loss"]), "epoch_seconds": row["epoch_seconds"]})
        write_json(self.out / DIAGNOSTICS_FILE, self.rows)
        self.log(f"epoch {row['epoch']}: -ELBO {self.rows[-1]['neg_elbo']:.2f} nats, KL {kl:.2f} nats, active units "
                 f"{units}/{self.model.config.latent_dim}, beta {row['beta']:.2f}, {row['epoch_seconds']:.1f} s")


def _labelled(labelled, column: str | None = None, label_column: str | None = None) -> tuple[list[str], list]:
    """(sentences, labels) from a 'sentence<TAB>label' file, a CSV's two columns, or a pair of lists."""
    from ..errors import DataError
    from ..data.text import read_labelled

    if not isinstance(labelled, tuple):
        return read_labelled(labelled, column, label_column)
    texts, labels = labelled
    if len(texts) != len(labels) or len(set(map(str, labels))) < 2:
        raise DataError(f"{len(texts)} labelled sentences with {len(labels)} labels: give one label per sentence, "
                        "with at least two distinct labels")
    return list(texts), list(labels)


def _with_labels(data, vocabulary, texts: list[str], labels: list, text):
    """(classes as strings, LabelledData): the corpus (unlabelled) followed by the labelled sentences."""
    import numpy as np
    import torch

    from ..semisupervised import UNLABELLED, LabelledData
    from ..data.text import TokenBatches

    classes, y = np.unique(np.asarray([str(label) for label in labels]), return_inverse=True)
    ids = torch.cat([data.ids, vocabulary.encode(texts, text.max_len)[0]])
    targets = torch.cat([torch.full((len(data),), UNLABELLED), torch.as_tensor(y)])
    return tuple(classes.tolist()), LabelledData(TokenBatches(ids, data.by_length), targets,
                                                  text.labelled_per_batch)


def _check_decoding(model, n: int, method: str, temperature: float, beam_size: int, seed: int) -> None:
    """ConfigError unless the decoding options make sense and n sentences' decoding fits in memory."""
    import math

    from ..errors import ConfigError
    from ..limits import check_memory

    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"--temperature must be a positive number, got {temperature}")
    if not 1 <= beam_size <= len(model.vocabulary):
        raise ConfigError(f"--beam-size must be in 1..{len(model.vocabulary)} (the vocabulary), got {beam_size}")
    check_count("--seed", seed, 0)
    beams = beam_size if method == "beam" else 1
    check_memory(4 * 4 * n * beams * (len(model.vocabulary) + model.config.max_len), f"decoding {n} sentences",
                 "ask for fewer")


def _decode_z(model, z, method: str, temperature: float, beam_size: int, seed: int) -> list[str]:
    import torch

    generator = torch.Generator(device=model.device).manual_seed(seed)
    options = {"temperature": temperature, "generator": generator} if method == "sample" else \
        {"beam_size": beam_size} if method == "beam" else {}
    return model.decode_ids(model.vae.decode(z).decode(method, **options))


def sample(model, n: int = 10, method: str = "sample", temperature: float = 1.0, beam_size: int = 5,
           seed: int = 0) -> list[str]:
    """n sentences decoded from z ~ p(z): temperature sampling, greedy or beam search."""
    import torch


    check_count("-n", n)
    model = as_model(model)
    _check_decoding(model, n, method, temperature, beam_size, seed)
    z = torch.randn(n, model.config.latent_dim, generator=torch.Generator().manual_seed(seed)).to(model.device)
    return _decode_z(model, z, method, temperature, beam_size, seed)


def reconstruct(model, sentences, method: str = "greedy", beam_size: int = 5) -> list[str]:
    """Each sentence decoded from its posterior mean E[z|x]."""
    model = as_model(model)
    sentences = sentences_from(sentences)
    _check_decoding(model, len(sentences), method, 1.0, beam_size, 0)
    z = _means(model, sentences)
    return _decode_z(model, z, method, 1.0, beam_size, 0)


def interpolate(model, a: str, b: str, steps: int = 8, method: str = "greedy", beam_size: int = 5) -> list[str]:
    """The homotopy of Bowman et al. (2016, sec. 5.2): sentences decoded along the straight line
    from E[z|a] to E[z|b], `steps` points including both ends."""
    import torch


    check_count("--steps", steps, 2, "the two ends")
    model = as_model(model)
    _check_decoding(model, steps, method, 1.0, beam_size, 0)
    za, zb = _means(model, [a, b])
    t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)  # (steps, 1)
    return _decode_z(model, (1 - t) * za + t * zb, method, 1.0, beam_size, 0)


def _means(model, sentences: list[str]):
    from ..text.model import latent_means

    return latent_means(model.vae, model.encode_text(sentences))


def embed(model, sentences, column: str | None = None):
    """Latent means E[z|x] per sentence, a numpy array (N, latent_dim): features for other models."""
    return _means(as_model(model), sentences_from(sentences, column)).cpu().numpy()


def classify(model, labelled, predict=None, text_column: str | None = None, label_column: str | None = None,
             seed: int = 0, unlabelled=None, self_training: float = SELF_TRAINING_THRESHOLD) -> Classification:
    """Few-label classification on latent features: the VAE learnt from unlabelled text, the classifier
    from `labelled` (a 'sentence<TAB>label' file, a CSV with the two columns, or (sentences, labels)).
    `unlabelled` (a file, one sentence per line, or a list): sentences without labels that the classifier
    also learns from by self-training (`latent_classifier`) with confidence threshold `self_training`;
    the cross-validated accuracy then refits each fold on its labelled part plus all of them."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from ..errors import ConfigError

    if not 0.5 <= self_training < 1:
        raise ConfigError(f"--self-training threshold must lie in [0.5, 1), got {self_training}")
    model = as_model(model)
    texts, labels = _labelled(labelled, text_column, label_column)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)  # integer labels: self-training marks -1
    features = embed(model, texts)
    pool = None if unlabelled is None else embed(model, sentences_from(unlabelled, text_column))
    folds = int(min(5, np.bincount(y).min()))
    accuracy = None
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        accuracy = float(np.mean([
            fit_latent_classifier(features[train], y[train], pool, self_training, seed).score(features[test], y[test])
            for train, test in cv.split(features, y)]))
    predictions: tuple[str, ...] = ()
    if predict is not None:
        classifier = fit_latent_classifier(features, y, pool, self_training, seed)
        predictions = tuple(classes[classifier.predict(embed(model, sentences_from(predict, text_column)))].tolist())
    return Classification(accuracy, folds, len(y), tuple(classes.tolist()), predictions,
                          0 if pool is None else len(pool))


def predict(model, sentences, column: str | None = None, batch_size: int = 256) -> Predictions:
    """Label `sentences` (a file, one per line, a CSV column, or a list) with the classifier p(y|z) learnt
    together with the VAE (`fit(..., labelled=...)`)."""
    import numpy as np
    import torch

    from ..errors import ConfigError

    model = as_model(model)
    if model.labelled is None:
        raise ConfigError("this model was fitted without labels: refit with 'vaekit text fit ... --labelled "
                          "FILE', or use 'vaekit text classify' (a classifier on latent means)")
    data = model.encode_text(sentences_from(sentences, column))
    with torch.inference_mode():
        probabilities = torch.cat([model.labelled.predict_proba(x.to(model.device))
                                   for x in data.batches(batch_size)]).cpu().numpy()
    labels = np.asarray(model.classes)[probabilities.argmax(1)] if len(probabilities) else []
    return Predictions(model.classes, tuple(labels), probabilities)


def evaluate(model, corpus, k: int = 100, column: str | None = None, seed: int = 0, progress: bool = True):
    """TextEvaluation on `corpus`: IWAE NLL (nats per sentence, k samples), perplexity per token
    (<eos> counted), -ELBO, KL and active units; `progress`: a bar with an ETA on a terminal."""
    from ..evaluation import check_importance_samples
    from ..text.model import evaluate_text

    check_importance_samples(k)
    model = as_model(model)
    return evaluate_text(model.vae, model.encode_text(sentences_from(corpus, column)), k=k, seed=seed,
                         progress=progress)
