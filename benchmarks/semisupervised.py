"""Semi-supervised M2 on MNIST with 100 labels, 10 per class (issue 43): test accuracy of the classifier q(y|x)
after a stated wall-clock budget.

    python -m benchmarks.semisupervised --minutes 30   # -> results/semisupervised_m2_mnist.json

The model is Kingma et al.'s (2014) M2 made smaller for two CPU cores: MLPs of one hidden layer of 500 (encoder,
decoder and classifier), a 50-d latent, Bernoulli pixels binarized afresh each epoch, Adam; every unlabelled row costs
a decoder pass per class.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from benchmarks.common import peak_rss_mb, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget (--time-limit)")
    parser.add_argument("--labelled", type=int, default=100, help="labels kept, balanced per class")
    parser.add_argument("--label-weight", type=float, default=50.0, help="alpha of -log q(y|x) on labelled rows")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="appended to the results file's name")
    args = parser.parse_args()

    from vaekit.apps import images

    options = dict(network="mlp", hidden=(500,), latent_dim=50, semi_supervised=True, labelled=args.labelled,
                   label_weight=args.label_weight, binarize="dynamic", batch_size=args.batch_size, lr=args.lr,
                   epochs=1000, time_limit=args.minutes, seed=args.seed, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = images.train(f"{folder}/run", data="mnist", **options)
        seconds = time.perf_counter() - start
        test = images.classify(run)
        train = images.classify(run, split="train")
    row = {"labelled": args.labelled, "label_weight": args.label_weight, "batch_size": args.batch_size, "lr": args.lr,
           "minutes": args.minutes, "epochs": len(run.history), "train_seconds": round(seconds, 1),
           "test_accuracy": test.accuracy, "train_accuracy": train.accuracy,
           "val_neg_elbo": run.history[-1].get("val_neg_elbo"), "peak_rss_mb": round(peak_rss_mb())}
    path = write_results(f"semisupervised_m2_mnist{args.tag}", {"row": row, "options": {**options, "hidden": [500]},
                                                               "history": run.history})
    print(json.dumps(row, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
