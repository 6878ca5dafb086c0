"""`vaekit text fit|sample|reconstruct|interpolate|embed|classify|predict|eval`: the flags of the sentence VAE,
each verb one call of vaekit.apps.text (or of vaekit.apps.text_files, where the verb writes a file)."""

from __future__ import annotations

import argparse

from ..apps import text, text_files
from ..config import TrainConfig, add_arguments, options_from
from ..text.config import TEXT_TRAIN, TextConfig
from .flags import add_overwrite, add_parameter, add_verbs

EXAMPLES = {
    "fit": "vaekit text fit corpus.txt -o model/ --epochs 10 --word-dropout 0.25 --kl-schedule cyclical\n"
           "  vaekit text fit reviews.csv --column text -o model/ --tokenizer wordpunct\n"
           "  vaekit text fit corpus.txt --labelled few.tsv -o model/   # semi-supervised: then 'text predict'\n"
           "  vaekit text fit corpus.txt -o model/ --epochs 20 --resume   # continue a stopped fit",
    "sample": "vaekit text sample model/ -n 20 --temperature 0.8\n  vaekit text sample model/ -n 5 --method beam",
    "reconstruct": "vaekit text reconstruct model/ \"the company said it will buy the unit\" --method beam",
    "interpolate": "vaekit text interpolate model/ \"sentence a\" \"sentence b\" --steps 8",
    "embed": "vaekit text embed model/ sentences.txt -o features.npy",
    "classify": "vaekit text classify model/ labelled.tsv --predict new.txt -o predictions.csv\n"
                "  vaekit text classify model/ labelled.tsv --unlabelled corpus.txt --predict new.txt",
    "predict": "vaekit text fit corpus.txt --labelled few.tsv -o model/ && vaekit text predict model/ new.txt",
    "eval": "vaekit text eval model/ test.txt --k 100",
}
CORPUS = "text file, one sentence per line; or .csv/.tsv with --column"


def add_commands(subparsers) -> None:
    # Long: a flat list of verbs and their flags, easier to read in order than split.
    make = add_verbs(subparsers, "text", "sentence VAE: fit, sample, reconstruct, interpolate, embed, classify, "
                     "predict, eval", "A sentence VAE (Bowman et al. 2016).", EXAMPLES, dest="text_command")

    def command(name: str, help: str, handler) -> argparse.ArgumentParser:
        parser = make(name, help)
        parser.set_defaults(handler=handler)
        if name != "fit":
            parser.add_argument("model", help="a folder written by 'vaekit text fit'")
        return parser

    def decoding(parser: argparse.ArgumentParser, function) -> None:
        add_parameter(parser, function, "method", choices=("greedy", "sample", "beam"),
                      help="how to decode z into words")
        add_parameter(parser, function, "beam_size", help="beams for --method beam")
        parser.add_argument("-o", "--out", help="also write the sentences to this .txt file")

    p = command("fit", "fit a sentence VAE on one sentence per line (or a CSV column) and write a model folder", _fit)
    p.add_argument("corpus", help=CORPUS)
    p.add_argument("-o", "--out", required=True, help="model folder to write")
    p.add_argument("--val", help="validation sentences (default: --val-fraction of the corpus)")
    p.add_argument("--column", help="text column of a CSV/TSV corpus (and of --labelled)")
    p.add_argument("--labelled", help="a few labelled sentences ('sentence<TAB>label' lines, or a CSV with --column "
                   "and --label-column): trained with the VAE as p(y|z), so the labels shape the latent space "
                   "(semi-supervised); then 'vaekit text predict'")
    p.add_argument("--label-column", help="label column of a CSV --labelled file")
    p.add_argument("--resume", action="store_true", help="continue the fit stopped in --out from its last epoch "
                   "(same corpus, --val and --labelled; --epochs may grow)")
    add_overwrite(p, text.fit)
    add_arguments(p.add_argument_group("text model"), TextConfig)
    add_arguments(p.add_argument_group("training"), TrainConfig, base=TEXT_TRAIN)

    p = command("sample", "sentences decoded from the prior", _sample)
    add_parameter(p, text.sample, "n", "-n", help="number of sentences")
    add_parameter(p, text.sample, "temperature", help="softmax temperature for sampling")
    add_parameter(p, text.sample, "seed", help="seed of the draws")
    decoding(p, text.sample)

    p = command("reconstruct", "sentences decoded from their posterior means", _reconstruct)
    p.add_argument("sentences", nargs="+", help="sentences in quotes, or one text file")
    decoding(p, text.reconstruct)

    p = command("interpolate", "the homotopy between two sentences in latent space", _interpolate)
    p.add_argument("a")
    p.add_argument("b")
    add_parameter(p, text.interpolate, "steps", help="points on the path, both ends included")
    decoding(p, text.interpolate)

    p = command("embed", "latent means per sentence to .npy or .csv", _embed)
    p.add_argument("corpus", help=CORPUS)
    p.add_argument("--column")
    p.add_argument("-o", "--out", help="output .npy or .csv (default: MODEL/embeddings.npy)")

    p = command("classify", "logistic regression on latent means of a few labelled sentences", _classify)
    p.add_argument("labelled", help="lines 'sentence<TAB>label', or a CSV with --text-column and --label-column")
    p.add_argument("--text-column")
    p.add_argument("--label-column")
    p.add_argument("--predict", help="sentences to label (one per line)")
    p.add_argument("--unlabelled", help="sentences without labels (one per line, or the --text-column of a CSV) "
                   "for self-training: the few-label case, e.g. the VAE's training corpus")
    add_parameter(p, text.classify, "self_training", metavar="P", help="with --unlabelled: add unlabelled sentences "
                  "predicted with probability > P as labelled, refit, repeat")
    p.add_argument("-o", "--out", help="predictions CSV (default: MODEL/predictions.csv)")

    p = command("predict", "labels from the classifier of a model fitted with --labelled", _predict)
    p.add_argument("sentences", help=CORPUS)
    p.add_argument("--column")
    p.add_argument("-o", "--out", help="predictions CSV: sentence, label, one probability per class "
                   "(default: MODEL/predictions.csv)")

    p = command("eval", "test NLL (IWAE), perplexity, KL and active units on held-out sentences", _eval)
    p.add_argument("corpus", help=CORPUS)
    p.add_argument("--column")
    add_parameter(p, text.evaluate, "k", help="importance samples for the NLL")
    p.add_argument("-o", "--out", help="output JSON (default: MODEL/eval.json)")


def _fit(args: argparse.Namespace):
    text.fit(args.corpus, args.out, val=args.val, column=args.column, labelled=args.labelled,
             label_column=args.label_column, resume=args.resume, overwrite=args.overwrite,
             **options_from(args, TextConfig, TrainConfig))
    return args.out


def _print_sentences(sentences: list[str], out: str | None):
    print("\n".join(sentences))
    return text_files.write_sentences(sentences, out) if out else None


def _sample(args):
    return _print_sentences(text.sample(args.model, args.n, args.method, args.temperature, args.beam_size, args.seed),
                            args.out)


def _reconstruct(args):
    inputs = text_files.read_inputs(args.sentences)
    outputs = text.reconstruct(args.model, inputs, args.method, args.beam_size)
    return _print_sentences([f"{a}\n  -> {b}" for a, b in zip(inputs, outputs)], args.out)


def _interpolate(args):
    return _print_sentences(text.interpolate(args.model, args.a, args.b, args.steps, args.method, args.beam_size),
                            args.out)


def _embed(args):
    return text_files.embed_file(args.model, args.corpus, args.out, args.column)


def _classify(args):
    result, path = text_files.classify_file(args.model, args.labelled, args.predict, args.out,
                                            text_column=args.text_column, label_column=args.label_column,
                                            unlabelled=args.unlabelled, self_training=args.self_training)
    shown = "n/a (a class has < 2 examples)" if result.accuracy is None else f"{result.accuracy:.4f}"
    pool = f" (self-training on {result.n_unlabelled} unlabelled)" if result.n_unlabelled else ""
    print(f"{result.folds}-fold accuracy on {result.n_labelled} labelled sentences{pool}: {shown}")
    return path


def _predict(args):
    sentences, result, path = text_files.predict_file(args.model, args.sentences, args.out, args.column)
    for sentence, label in zip(sentences[:10], result.labels):
        print(f"{label}\t{sentence}")
    return path


def _eval(args):
    result, path = text_files.evaluate_file(args.model, args.corpus, args.out, k=args.k, column=args.column)
    for key, value in result.to_dict().items():
        print(f"{key:>15}  {value:.4f}" if isinstance(value, float) else f"{key:>15}  {value}")
    return path
