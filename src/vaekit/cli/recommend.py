"""`vaekit recommend fit|evaluate|top`: the flags of the recommenders (Mult-VAE/DAE, RecVAE, EASE, popularity), each
verb one call of vaekit.apps.recommend."""

from __future__ import annotations

import argparse
from ..apps import recommend
from ..apps.recommend import InteractionConfig, RecommendConfig
from ..config import TrainConfig, add_arguments, options_from
from .flags import add_overwrite, add_parameter, add_verbs

EXAMPLES = {
    "fit": "vaekit recommend fit ratings.csv --min-rating 4 -o models/ml\n"
           "  vaekit recommend fit user_artists.dat --model recvae -o models/lastfm",
    "evaluate": "vaekit recommend evaluate models/ml --baselines",
    "top": "vaekit recommend top models/ml --user 42 -k 10\n"
           "  vaekit recommend top models/ml --items 1,260,1196 -k 10   # a new user, no retraining\n"
           "  vaekit recommend top models/ml --user 42 --titles movies.csv   # titles (found beside the ratings too)",
}
# The TrainConfig fields `fit` offers, with the recommender's training defaults.
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "early_stopping", "precision", "seed", "device")


def add_commands(subparsers) -> None:
    verb = add_verbs(subparsers, "recommend", "Mult-VAE/RecVAE/DAE recommendations from user-item interactions",
                     "Mult-VAE/DAE (Liang et al. 2018) and RecVAE (Shenbin et al. 2020) with popularity and EASE "
                     "baselines.", EXAMPLES)

    p = verb("fit", "fit a recommender on an interaction log and write a model directory")
    p.add_argument("data", help="CSV/TSV/.dat/Parquet file of user, item[, rating or play count] rows")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    add_overwrite(p, recommend.fit)
    add_arguments(p.add_argument_group("data"), InteractionConfig)
    add_arguments(p.add_argument_group("model"), RecommendConfig)
    add_arguments(p.add_argument_group("training"), TrainConfig, base=RecommendConfig().train, only=TRAIN_FLAGS)
    p.set_defaults(handler=_fit_command)

    p = verb("evaluate", "Recall@20/50 and NDCG@100 on the held-out users")
    p.add_argument("model", help="model directory written by 'vaekit recommend fit'")
    add_parameter(p, recommend.evaluate, "split", choices=("test", "val"), help="the held-out users to score")
    add_parameter(p, recommend.evaluate, "baselines", help="also fit and score popularity and EASE on the same split")
    p.set_defaults(handler=_evaluate_command)

    p = verb("top", "the top-k items for a known user or a new user's items")
    p.add_argument("model", help="model directory written by 'vaekit recommend fit'")
    p.add_argument("--user", help="a user id as in the data")
    p.add_argument("--items", help="comma-separated item ids of a new user")
    add_parameter(p, recommend.top, "k", "-k", help="number of items")
    add_parameter(p, recommend.top, "exclude_seen", help="leave out items the user already has")
    p.add_argument("--titles", help="a file of item ids and titles (default: MovieLens' movies.csv or Last.fm's "
                                    "artists.dat beside the fitted ratings, when there is one)")
    p.set_defaults(handler=_top_command)


def _fit_command(args: argparse.Namespace):
    model = recommend.fit(args.data, args.out, InteractionConfig(**options_from(args, InteractionConfig)),
                          progress=True, overwrite=args.overwrite, **options_from(args, RecommendConfig, TrainConfig))
    n_users, n_items = model.data.matrix.shape
    print(f"{model.config.model}: {n_users} users x {n_items} items, {model.data.matrix.nnz} interactions")
    if model.history and "val_ndcg@100" in model.history[0]:
        print(f"best validation NDCG@100 {max(r['val_ndcg@100'] for r in model.history):.4f}")
    return model.path


def _evaluate_command(args: argparse.Namespace):
    results = recommend.evaluate(args.model, args.split, args.baselines)
    print(f"{'model':<11} {'Recall@20':>9} {'Recall@50':>9} {'NDCG@100':>9} {'coverage@20':>11} {'long tail@20':>12} "
          f"{'users':>6}")
    for name, r in results.items():
        print(f"{name:<11} {r['recall@20']:>9.4f} {r['recall@50']:>9.4f} {r['ndcg@100']:>9.4f} {r['coverage@20']:>11.4f} "
              f"{r['long_tail@20']:>12.4f} {r['users']:>6}")
    return recommend.evaluation_file(args.model, args.split)


def _top_command(args: argparse.Namespace):
    items = [i.strip() for i in args.items.split(",") if i.strip()] if args.items is not None else None
    model = recommend.load(args.model)
    best = recommend.top(model, args.user, items, args.k, args.exclude_seen)
    titles = recommend.item_titles(model, args.titles)
    width = max([len("item"), *(len(item) for item, _ in best)])
    print(f"rank  {'item':<{width}}  {'score':>8}" + ("  title" if titles else ""))
    for rank, (item, score) in enumerate(best, 1):
        print(f"{rank:>4}  {item:<{width}}  {score:>8.4f}" + (f"  {titles.get(item, '?')}" if titles else ""))
    return None
