"""Sentence-VAE benchmark (issue 10): language modelling on Penn Treebank against a plain GRU language
model trained for the same CPU time, and few-label sentiment from latent features against
TF-IDF logistic regression.

Reduced configuration (the default; the whole script ~10-12 min on one thread): small GRUs
(embedding 64, hidden 128, latent 16), a random subset of PTB's training sentences for a couple of
epochs, the test NLL on a random subset of the test sentences with k importance samples. Bowman et
al. (2016) trained for many epochs with larger LSTMs; their numbers are not expected in this budget.

  OMP_NUM_THREADS=1 python benchmarks/text.py                 # the reduced run written to results/text.json
  OMP_NUM_THREADS=1 python benchmarks/text.py --only ptb --ptb-train 42068 --ptb-epochs 6 --ptb-test 3761 --k 20 --ptb-word-dropout 0 --ptb-free-bits 0.125 --tag full_wd0_fb0.125   # whole PTB, ~55 min
  python benchmarks/text.py --only ptb --ptb-train 42068 --ptb-test 3761 --k 20 --ptb-embed 256 --ptb-hidden 384 --ptb-dropout 0.3 --ptb-word-dropout 0 --ptb-free-bits 0.125 --ptb-kl-warmup 2 --ptb-precision bf16 --ptb-minutes 60 --tag clock60_h384_d0.3   # round 8: the VAE and its LM at once, 60 min each, ~67 min
  python benchmarks/text.py --only ptb --ptb-train 42068 --ptb-test 3761 --k 20 --ptb-embed 256 --ptb-hidden 384 --ptb-dropout 0.3 --ptb-word-dropout 0 --ptb-free-bits 0.125 --ptb-kl-warmup 2 --ptb-precision bf16 --ptb-minutes 60 --ptb-tie --tag clock60_h384_d0.3_tied   # round 9: the same with tied embeddings, ~64 min
  python benchmarks/text.py --only ptb --ptb-train 42068 --ptb-test 3761 --k 20 --ptb-embed 256 --ptb-hidden 512 --ptb-encoder-hidden 128 --ptb-dropout 0.5 --ptb-word-dropout 0 --ptb-free-bits 0.125 --ptb-kl-warmup 2 --ptb-precision bf16 --ptb-minutes 60 --ptb-tie --tag clock60_h512_enc128_d0.5_tied   # round 11: a wider decoder, a narrower encoder, ~65 min

Sentiment: the VAEs train with the bag-of-words loss (--bow-weight, Zhao et al. 2017); every logistic
regression is reported with C fixed and with C chosen by 5-fold CV on the labelled sentences alone.
At the label counts of --joint-labels (default 100) each label draw also trains a semi-supervised VAE
(`fit(..., labelled=...)`, p(y|z) learnt with the ELBO) and scores its predictions.
Settings are chosen with --validate, which scores a held-out part of the training split instead of
the test split:

  OMP_NUM_THREADS=1 python benchmarks/text.py --only sentiment --validate --bow-weight 1 --tag b1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.common import markdown_table, write_results  # noqa: E402

SMALL = dict(embed_dim=64, hidden=128, latent_dim=16, batch_size=64, lr=1e-3, grad_clip=5.0, progress=False)


def data_dir() -> Path:
    root = os.environ.get("VAEKIT_DATA")
    if not root or not Path(root).is_dir():
        sys.exit("set VAEKIT_DATA to the shared data folder (it holds ptb/, sentence-polarity/, ...)")
    return Path(root)


def subset(items: list, n: int, seed: int) -> list:
    order = np.random.default_rng(seed).permutation(len(items))[:n]
    return [items[i] for i in sorted(order)]


def train_lm(decoder, batches, seconds: float, lr: float, clip: float, seed: int) -> dict:
    """A plain GRU LM trained with Adam for `seconds` of this process's CPU time over shuffled batches
    (epochs repeat). CPU time, not wall time, so that other load on the machine does not bias the match."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    decoder.train()
    started, steps, sentences = time.process_time(), 0, 0
    while time.process_time() - started < seconds:
        order = torch.randperm(len(batches), generator=generator)
        for start in range(0, len(order), SMALL["batch_size"]):
            x = batches[order[start:start + SMALL["batch_size"]]]
            loss = -decoder.log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), clip)
            optimizer.step()
            steps, sentences = steps + 1, sentences + len(x)
            if time.process_time() - started >= seconds:
                break
    return {"seconds": time.process_time() - started, "steps": steps, "sentences_seen": sentences}


def ptb_data(args):
    """PTB's 10k vocabulary and the (train, valid, test) sentences of the run (random subsets by args)."""
    from vaekit.data.text import Vocabulary

    folder = data_dir() / "ptb"
    read = lambda split: (folder / f"ptb.{split}.txt").read_text().splitlines()  # noqa: E731
    full_train, valid, test = read("train"), read("valid"), read("test")
    vocabulary = Vocabulary.build(full_train, "word", max_size=10004)  # PTB's 10k words (with <unk>) + 3 specials
    return (vocabulary, subset(full_train, args.ptb_train, 0), subset(valid, args.ptb_val, 1),
            subset(test, args.ptb_test, 2))


def ptb_options(args) -> dict:
    sizes = dict(SMALL, embed_dim=args.ptb_embed, hidden=args.ptb_hidden, encoder_hidden=args.ptb_encoder_hidden,
                 latent_dim=args.ptb_latent, batch_size=args.ptb_batch_size, lr=args.ptb_lr)
    clock = dict(time_limit=args.ptb_minutes, epochs=1000, lr_schedule=args.ptb_lr_schedule) if args.ptb_minutes \
        else dict(epochs=args.ptb_epochs)
    warmup = args.ptb_epochs / 2 if args.ptb_kl_warmup is None else args.ptb_kl_warmup
    return dict(sizes, **clock, max_len=90, kl_warmup=warmup, word_dropout=args.ptb_word_dropout,
                free_bits=args.ptb_free_bits, dropout=args.ptb_dropout, precision=args.ptb_precision,
                tie_embeddings=args.ptb_tie, cell=args.ptb_cell, layers=args.ptb_layers)


def fit_ptb(kind: str, train, valid, vocabulary, options: dict):
    """`text.fit` on PTB -> (model, CPU seconds, wall seconds, per-epoch diagnostics); log lines tagged `kind`."""
    from vaekit.apps import text as app

    with tempfile.TemporaryDirectory() as out:
        cpu, wall = time.process_time(), time.perf_counter()
        model = app.fit(train, out, val=valid, vocabulary=vocabulary, log=lambda line: print(f"  {kind}", line,
                                                                                             flush=True), **options)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        diagnostics = json.loads((Path(out) / "diagnostics.json").read_text())
    return model, cpu, wall, diagnostics


def fit_and_score(kind: str, args) -> dict:
    """One of the clocked pair, in its own process on one thread: the sentence VAE ('vae') or the same
    decoder without a latent ('lm', latent_dim=0: no encoder, no word dropout), fitted by the same
    `fit` for the same minutes, its best validation weights scored on the test sentences."""
    import torch

    from vaekit.text.model import evaluate_text

    torch.set_num_threads(1)
    vocabulary, train, valid, test = ptb_data(args)
    options = ptb_options(args)
    if kind == "lm":
        options.update(latent_dim=0, word_dropout=0.0, free_bits=0.0)
    model, seconds, wall, diagnostics = fit_ptb(kind, train, valid, vocabulary, options)
    result = evaluate_text(model.vae, model.encode_text(test), k=args.k if kind == "vae" else 1)
    return {"row": {"nll": result.nll, "ppl": result.perplexity, "kl": result.kl if kind == "vae" else None,
                    "neg_elbo": result.neg_elbo, "active_units": result.active_units if kind == "vae" else None,
                    "seconds": seconds, "wall_seconds": wall, "epochs": len(diagnostics),
                    "validation_neg_elbo": min(row["neg_elbo"] for row in diagnostics)},
            "epochs": diagnostics, "tokens": result.n_tokens}


def ptb_clocked(args) -> dict:
    """The VAE and its language model trained at once, one thread each, for --ptb-minutes each."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        vae, lm = [future.result() for future in [pool.submit(fit_and_score, kind, args) for kind in ("vae", "lm")]]
    options = ptb_options(args)
    tied, cell = ", tied embeddings" if args.ptb_tie else "", args.ptb_cell.upper()
    encoder = f", encoder {cell} {args.ptb_encoder_hidden}" if args.ptb_encoder_hidden else ""
    stacked = f"{args.ptb_layers}-layer " if args.ptb_layers > 1 else ""
    vae["row"]["model"] = (f"sentence VAE ({stacked}{cell} {args.ptb_hidden}{encoder}, dropout {args.ptb_dropout:g}, "
                           f"word dropout {args.ptb_word_dropout:g}, free bits {args.ptb_free_bits:g}{tied})")
    lm["row"]["model"] = f"{stacked}{cell} language model (same sizes{tied}, same fit, same minutes)"
    return {"config": {**options, "train_sentences": args.ptb_train, "val_sentences": args.ptb_val,
                       "test_sentences": args.ptb_test, "test_tokens_with_eos": vae["tokens"], "k": args.k,
                       "clock": "both fitted at once, one thread each, each stopping before an epoch that would end "
                                "past --ptb-minutes"},
            "rows": [vae["row"], lm["row"]], "vae_epochs": vae["epochs"], "lm_epochs": lm["epochs"],
            "bowman_2016": {"vae": {"nll": 101, "ppl": 119, "kl": 2}, "lstm_lm": {"nll": 100, "ppl": 116}}}


def ptb(args) -> dict:
    import torch

    from vaekit.text.model import evaluate_text
    from vaekit.text.networks import SentenceDecoder
    from vaekit.data.text import PAD, TokenBatches

    if args.ptb_minutes:
        return ptb_clocked(args)
    vocabulary, train, valid, test = ptb_data(args)
    model, vae_seconds, _, diagnostics = fit_ptb("vae", train, valid, vocabulary, ptb_options(args))
    options = ptb_options(args)
    x_test = model.encode_text(test)
    vae = evaluate_text(model.vae, x_test, k=args.k)
    torch.manual_seed(0)
    lm = SentenceDecoder(len(vocabulary), options["embed_dim"], options["hidden"], 0)
    lm_train = train_lm(lm, TokenBatches(vocabulary.encode(train, 90)[0]), vae_seconds, options["lr"],
                        options["grad_clip"], 0)
    lm.eval()
    with torch.inference_mode():
        lm_nll = float(sum(-lm.log_prob(x).sum() for x in x_test.batches(128))) / len(test)
    tokens = int((x_test.ids != PAD).sum())
    rows = [
        {"model": f"sentence VAE (GRU, word dropout {args.ptb_word_dropout:g}, free bits {args.ptb_free_bits:g})", "nll": vae.nll, "ppl": vae.perplexity, "kl": vae.kl,
         "neg_elbo": vae.neg_elbo, "active_units": vae.active_units, "seconds": vae_seconds},
        {"model": "GRU language model (same size, same time)", "nll": lm_nll, "ppl": math.exp(lm_nll * len(test) / tokens),
         "kl": None, "neg_elbo": None, "active_units": None, "seconds": lm_train["seconds"]},
    ]
    return {"config": {**options, "train_sentences": len(train), "val_sentences": len(valid),
                       "test_sentences": len(test), "test_tokens_with_eos": tokens, "k": args.k,
                       "vocabulary": len(vocabulary)},
            "rows": rows, "vae_epochs": diagnostics, "lm_training": lm_train,
            "bowman_2016": {"vae": {"nll": 101, "ppl": 119, "kl": 2}, "lstm_lm": {"nll": 100, "ppl": 116}}}


SENTIMENT_SETS = ("sentence-polarity", "sentiment-labelled-sentences")


def sentiment_data(name: str) -> tuple[list[str], list[int], str]:
    folder = data_dir() / name
    if name == "sentence-polarity":
        pos = (folder / "rt-polarity.pos").read_text(encoding="utf-8").splitlines()
        neg = (folder / "rt-polarity.neg").read_text(encoding="utf-8").splitlines()
        return pos + neg, [1] * len(pos) + [0] * len(neg), "word"
    texts, labels = [], []
    for file in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"):
        for line in (folder / file).read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                sentence, label = line.rsplit("\t", 1)
                texts.append(sentence)
                labels.append(int(label))
    return texts, labels, "wordpunct"


# Inverse L2 strengths searched by 5-fold CV on the labelled sentences alone, the same for both feature sets.
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def classifiers(seed: int) -> dict:
    """Logistic regressions compared, by name: C fixed (latent: sklearn's 1 on standardized means; TF-IDF:
    10) or chosen by stratified 5-fold CV over C_GRID on the labelled set only."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from vaekit.apps import text as app

    def cv():
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        return LogisticRegressionCV(Cs=list(C_GRID), cv=folds, scoring="accuracy", max_iter=2000)

    return {"latent": app.latent_classifier(seed), "latent_cv": make_pipeline(StandardScaler(), cv()),
            "tfidf": LogisticRegression(max_iter=2000, C=10.0), "tfidf_cv": cv()}


FEATURES = {"latent": "VAE latent means (LR, C=1)", "latent_cv": "VAE latent means (LR, C by 5-fold CV)",
            "latent_self": "VAE latent means (LR, C=1, self-training)",
            "latent_joint": "semi-supervised VAE: p(y|z) trained with the ELBO (text fit --labelled)",
            "tfidf": "TF-IDF uni+bigrams (LR, C=10)", "tfidf_cv": "TF-IDF uni+bigrams (LR, C by 5-fold CV)",
            "tfidf_self": "TF-IDF uni+bigrams (LR, C=10, self-training)"}


def self_trained(method: str, x, labels, chosen, rest, threshold: float, seed: int):
    """The semi-supervised rows: the labelled draw `chosen` plus the unlabelled rest of the training split,
    by self-training at `threshold` -- the latent features through `vaekit text classify --unlabelled`'s
    code, TF-IDF through the same sklearn SelfTrainingClassifier around its LR (C=10)."""
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import SelfTrainingClassifier

    from vaekit.apps import text as app

    if method == "latent_self":
        return app.fit_latent_classifier(x[chosen], labels[chosen], x[rest], threshold, seed)
    model = SelfTrainingClassifier(LogisticRegression(max_iter=2000, C=10.0), threshold=threshold)
    return model.fit(scipy.sparse.vstack([x[chosen], x[rest]]),
                     np.concatenate([labels[chosen], np.full(len(rest), -1)]))


def sentiment(name: str, args, epochs: int, max_vocab: int) -> dict:
    """Few-label accuracy on the test split, or with --validate on a validation part (20%, seed 1) of the
    training split, the VAE then fitted on the rest of the training split (the test split untouched)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from vaekit.apps import text as app

    texts, labels, tokenizer = sentiment_data(name)
    labels = np.asarray(labels)
    order = np.random.default_rng(0).permutation(len(texts))
    n_test = len(texts) // 5
    test, train = order[:n_test], order[n_test:]
    if args.validate:
        inner = np.random.default_rng(1).permutation(train)
        n_val = len(train) // 5
        test, train = inner[:n_val], inner[n_val:]
    warmup = epochs / 2 if args.kl_warmup is None else args.kl_warmup
    options = dict(SMALL, epochs=epochs, kl_warmup=warmup, word_dropout=args.word_dropout,
                   free_bits=args.free_bits, tokenizer=tokenizer, max_vocab=max_vocab, max_len=64, val_fraction=0.05,
                   latent_dim=args.latent_dim, bow_weight=args.bow_weight)
    others = [other for other in args.extra_unlabelled if other != name]
    extra = [text for other in others for text in sentiment_data(other)[0]]
    unlabelled = [texts[i] for i in train] + extra  # extra corpora: more unlabelled text, never labels or test
    with tempfile.TemporaryDirectory() as out:
        started = time.process_time()
        model = app.fit(unlabelled, out, log=lambda line: print(f"  {name}", line), **options)
        seconds = time.process_time() - started
        diagnostics = json.loads((Path(out) / "diagnostics.json").read_text())
    features = app.embed(model, texts)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit(unlabelled)
    words = tfidf.transform(texts)
    rows, joint_seconds = [], []
    for n_labels in (100, 1000):
        methods = [m for m in FEATURES if m != "latent_joint" or n_labels in args.joint_labels]
        scores = {method: [] for method in methods}
        for seed in range(args.label_seeds):
            chosen = np.random.default_rng(100 + seed).choice(train, n_labels, replace=False)
            rest = np.setdiff1d(train, chosen)
            supervised = classifiers(seed)
            for method in methods:
                if method == "latent_joint":
                    started = time.process_time()
                    with tempfile.TemporaryDirectory() as out:
                        joint = app.fit(unlabelled, out, labelled=([texts[i] for i in chosen], labels[chosen].tolist()),
                                        log=lambda line: None, **options)
                    joint_seconds.append(time.process_time() - started)
                    predicted = np.asarray(app.predict(joint, [texts[i] for i in test]).labels).astype(int)
                    scores[method].append(float(np.mean(predicted == labels[test])))
                    continue
                x = features if method.startswith("latent") else words
                classifier = supervised[method].fit(x[chosen], labels[chosen]) if method in supervised else \
                    self_trained(method, x, labels, chosen, rest, args.self_training, seed)
                scores[method].append(classifier.score(x[test], labels[test]))
        for method, values in scores.items():
            rows.append({"dataset": name, "labels": n_labels, "features": FEATURES[method],
                         "accuracy": float(np.mean(values)), "std": float(np.std(values)), "runs": len(values),
                         "scores": [float(v) for v in values]})
        print(f"  {name} {n_labels} labels: " + ", ".join(f"{m} {np.mean(v):.3f}" for m, v in scores.items()))
    split = ("validation: random permutation seed 0, the first 20% (the test split) left out; of the rest, a "
             "permutation seed 1: first 20% scored, the VAE and TF-IDF fitted on the others" if args.validate else
             "random permutation seed 0: first 20% test, the rest unlabelled training text")
    return {"config": {**options, "train_sentences": len(train), "scored_sentences": len(test), "split": split,
                       "extra_unlabelled": {"datasets": others, "sentences": len(extra)},
                       "label_draws": f"{args.label_seeds} random draws of the labelled subset (seeds 100+)",
                       "c_grid": list(C_GRID), "self_training_threshold": args.self_training,
                       "joint_labels": list(args.joint_labels),
                       "joint": "one semi-supervised VAE per label draw, the same options, its labelled draw passed "
                                "as fit(labelled=...) (label weight and labelled rows per batch: TextConfig defaults)",
                       "unlabelled_for_self_training": "the training split less the labelled draw"},
            "vae_cpu_seconds": seconds, "vae_cpu_seconds_per_epoch": seconds / epochs, "vae_epochs": diagnostics,
            "joint_vae_cpu_seconds": joint_seconds,
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptb-train", type=int, default=5000, help="PTB training sentences (random subset)")
    parser.add_argument("--ptb-val", type=int, default=500)
    parser.add_argument("--ptb-test", type=int, default=1000)
    parser.add_argument("--ptb-epochs", type=int, default=2)
    parser.add_argument("--ptb-word-dropout", type=float, default=0.25, help="the PTB VAE's word dropout")
    parser.add_argument("--ptb-free-bits", type=float, default=0.0, help="the PTB VAE's free bits (nats per dim)")
    parser.add_argument("--ptb-embed", type=int, default=SMALL["embed_dim"])
    parser.add_argument("--ptb-hidden", type=int, default=SMALL["hidden"])
    parser.add_argument("--ptb-latent", type=int, default=SMALL["latent_dim"])
    parser.add_argument("--ptb-encoder-hidden", type=int, default=0, help="the VAE encoder's state size per "
                                                                          "direction (0: --ptb-hidden)")
    parser.add_argument("--ptb-dropout", type=float, default=0.0, help="dropout on the decoders' embeddings and states")
    parser.add_argument("--ptb-tie", action="store_true", help="tie the decoders' input and output embeddings")
    parser.add_argument("--ptb-cell", choices=("gru", "lstm"), default="gru",
                        help="recurrent cell of both models (Bowman et al.'s: lstm)")
    parser.add_argument("--ptb-layers", type=int, default=1, help="recurrent layers of both decoders")
    parser.add_argument("--ptb-batch-size", type=int, default=SMALL["batch_size"])
    parser.add_argument("--ptb-lr", type=float, default=SMALL["lr"])
    parser.add_argument("--ptb-precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--ptb-minutes", type=float, default=0.0,
                        help="> 0: fit the VAE and the LM at once (one thread each) for this many minutes each, "
                             "with --ptb-lr-schedule over the clock, instead of --ptb-epochs and a CPU-time-matched LM")
    parser.add_argument("--ptb-kl-warmup", type=float, help="the PTB VAE's KL warm-up in epochs (default: half of "
                                                            "--ptb-epochs)")
    parser.add_argument("--ptb-lr-schedule", choices=("constant", "cosine"), default="cosine")
    parser.add_argument("--k", type=int, default=10, help="importance samples for the VAE's test NLL")
    parser.add_argument("--polarity-epochs", type=int, default=2)
    parser.add_argument("--sls-epochs", type=int, default=4)
    parser.add_argument("--label-seeds", type=int, default=5)
    parser.add_argument("--only", choices=("ptb", "sentiment"), help="one part, written to results/text_PART.json")
    parser.add_argument("--word-dropout", type=float, default=0.5, help="sentiment VAEs' word dropout")
    parser.add_argument("--free-bits", type=float, default=0.25, help="sentiment VAEs' free bits (nats per dim)")
    parser.add_argument("--kl-warmup", type=float, help="sentiment VAEs' KL warm-up in epochs (default: half the "
                        "epochs)")
    parser.add_argument("--latent-dim", type=int, default=16, help="sentiment VAEs' latent size")
    parser.add_argument("--bow-weight", type=float, default=3.0, help="sentiment VAEs' bag-of-words loss weight "
                        "(3: the best of 0, 1, 3 on the validation protocol, --validate)")
    parser.add_argument("--self-training", type=float, default=0.75, help="confidence threshold of the self-trained "
                        "rows (0.75: at least as good as 0.55, 0.6, 0.7, 0.9 with --validate)")
    parser.add_argument("--joint-labels", type=int, nargs="*", default=[100], metavar="N",
                        help="label counts at which a semi-supervised VAE is trained per label draw (one full VAE "
                             "training each; none: skip)")
    parser.add_argument("--validate", action="store_true", help="score on a validation part of the training split "
                        "(never the test split), written to results/text_sentiment_validation*.json")
    parser.add_argument("--tag", default="", help="suffix of the results file name (validation sweeps)")
    parser.add_argument("--datasets", nargs="+", choices=SENTIMENT_SETS, default=list(SENTIMENT_SETS))
    parser.add_argument("--extra-unlabelled", nargs="*", choices=SENTIMENT_SETS, default=[], metavar="DATASET",
                        help="other sentiment sets whose sentences (all, without labels) join the VAE's and "
                             "TF-IDF's unlabelled training text")
    parser.add_argument("--sls-vocab", type=int, default=3000, help="sentiment-labelled-sentences' vocabulary cap")
    args = parser.parse_args()
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = {}
    if args.only != "sentiment":
        results["ptb"] = ptb(args)
        print("\n## PTB language modelling (test subset)\n")
        print(markdown_table(results["ptb"]["rows"], [("model", "model", ""), ("nll", "NLL (nats/sent.)", ".2f"),
                                                      ("ppl", "PPL", ".1f"), ("kl", "KL", ".2f"),
                                                      ("active_units", "active units", ""),
                                                      ("seconds", "train CPU s", ".0f")]))
    if args.only == "ptb":
        results["total_seconds"] = time.perf_counter() - started
        name = "text_ptb" + (f"_{args.tag}" if args.tag else "")
        print(f"\nwrote {write_results(name, results)} ({results['total_seconds']:.0f} s)")
        return
    sizes = {"sentence-polarity": (args.polarity_epochs, 5000), "sentiment-labelled-sentences": (args.sls_epochs, args.sls_vocab)}
    results["sentiment"] = [sentiment(name, args, *sizes[name]) for name in args.datasets]
    rows = [row for block in results["sentiment"] for row in block["rows"]]
    print("\n## Few-label sentiment (test accuracy, mean ± std over label draws)\n")
    print(markdown_table(rows, [("dataset", "dataset", ""), ("labels", "labels", ""), ("features", "features", ""),
                                ("accuracy", "accuracy", ".3f"), ("std", "±", ".3f")]))
    for block in results["sentiment"]:
        print(f"{block['rows'][0]['dataset']} VAE on {block['config']['train_sentences']} sentences: "
              f"{block['vae_cpu_seconds_per_epoch']:.1f} CPU s per epoch (validation included)")
    results["total_seconds"] = time.perf_counter() - started
    name = "text" if args.only is None else f"text_{args.only}"
    name += "_validation" if args.validate else ""
    name += f"_{args.tag}" if args.tag else ""
    print(f"\nwrote {write_results(name, results)} ({results['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
