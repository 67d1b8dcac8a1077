"""Return propensity on real history: online River model vs an offline batch baseline.

Imports the UCI Online Retail development slice, runs it through the same case windows and
decision engine as a replay (one decision per order, at ``order_placed``), and feeds each
learning example to the online learner as its label arrives. Then:

- *online*: progressive ROC AUC of the predictions the engine made at decision time, on
  orders decided in the test months (the model had learned only from earlier labels);
- *offline*: scikit-learn's HistGradientBoostingClassifier trained in batch on the orders
  decided in the earlier months and scored on the same test orders.

Run: ``python benchmarks/online_retail_auc.py [--csv PATH] [--split 2011-05-01]``
(needs the ``bench`` extra: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.importers import BUILTIN_MAPPINGS, import_csv  # noqa: E402
from flows.sources import MergedFiles, find_stream_files  # noqa: E402
from operators.case import DAY  # noqa: E402
from operators.contract import Event, decode  # noqa: E402
from operators.engine import DecisionEngine  # noqa: E402
from operators.evaluation import roc_auc  # noqa: E402
from operators.features import FEATURE_NAMES  # noqa: E402
from operators.gate import SnapshotBoard  # noqa: E402
from operators.learner import Learner  # noqa: E402
from operators.models import Example  # noqa: E402
from operators.online_scorer import OnlineScorer  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.window import WindowConfig, run_in_memory  # noqa: E402
from state.context import InMemoryContextStore  # noqa: E402

DEFAULT_CSV = ROOT.parent / "shared/data/online-retail/online-retail-2010-12_2011-06.csv.gz"


def events(input_dir: Path):
    merged = MergedFiles(find_stream_files(input_dir))
    for stream, payload, received_at in merged:
        ev = decode(stream, payload, received_at)
        if isinstance(ev, Event):
            yield ev


def run(csv: Path, split: datetime, window_days: float, publish_every: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        stats = import_csv(csv, data, BUILTIN_MAPPINGS["online-retail"])
        import_s = time.perf_counter() - t0

        board = SnapshotBoard()
        examples: list[Example] = []

        class Recording(Learner):
            def learn(self, ex: Example) -> None:
                examples.append(ex)
                super().learn(ex)

        # Each order is labelled "refunded within the recovery window", at its end.
        learner = Recording(publish_every, horizon=window_days * DAY)
        engine = DecisionEngine(
            RecoveryPolicy.default(), scorer=OnlineScorer(board), context=InMemoryContextStore()
        )

        def on_output(out: tuple[str, Any]) -> None:
            if out[0] not in ("pending", "resolution"):
                return
            before = learner.examples
            learner.feed(out[1])
            if learner.examples // publish_every > before // publish_every:
                board.post(learner.publish())

        cfg = WindowConfig(
            window_after_placed=window_days * DAY, window_after_delivery=window_days * DAY
        )
        t0 = time.perf_counter()
        run_in_memory(events(data), engine, cfg, close_at_eof=False, on_output=on_output)
        learner.finish()
        replay_s = time.perf_counter() - t0

    cut = split.timestamp()
    train = [e for e in examples if e.decided_at < cut]
    test = [e for e in examples if e.decided_at >= cut]
    online_auc = roc_auc([e.label for e in test], [e.predicted for e in test])

    from sklearn.ensemble import HistGradientBoostingClassifier

    def matrix(exs: list[Example]) -> list[list[float]]:
        return [[e.features[n] for n in FEATURE_NAMES] for e in exs]

    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0)
    model.fit(matrix(train), [e.label for e in train])
    offline_scores = model.predict_proba(matrix(test))[:, 1].tolist()
    offline_auc = roc_auc([e.label for e in test], offline_scores)
    return {
        "orders": stats.orders,
        "examples": len(examples),
        "train_examples": len(train),
        "test_examples": len(test),
        "test_refund_rate": sum(e.label for e in test) / max(len(test), 1),
        "online_progressive_auc": online_auc,
        "offline_hgb_auc": offline_auc,
        "import_seconds": import_s,
        "replay_seconds": replay_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--split", default="2011-04-01", help="test months start (UTC date)")
    ap.add_argument(
        "--window-days",
        type=float,
        default=45.0,
        help="recovery window (default 45, as in live mode)",
    )
    ap.add_argument("--publish-every", type=int, default=100)
    args = ap.parse_args()
    if not args.csv.exists():
        print(f"no data at {args.csv}", file=sys.stderr)
        return 2
    split = datetime.fromisoformat(args.split).replace(tzinfo=UTC)
    r = run(args.csv, split, args.window_days, args.publish_every)
    print(
        f"orders {r['orders']:,}; labelled examples {r['examples']:,} "
        f"(train {r['train_examples']:,} before {args.split}, test {r['test_examples']:,}; "
        f"test refund rate {r['test_refund_rate']:.1%})"
    )
    print(
        f"online River model, progressive ROC AUC on test orders: {r['online_progressive_auc']:.4f}"
    )
    print(f"offline HistGradientBoosting (batch, earlier months):   {r['offline_hgb_auc']:.4f}")
    print(
        f"difference (offline - online): {r['offline_hgb_auc'] - r['online_progressive_auc']:+.4f}"
    )
    print(f"import {r['import_seconds']:.1f} s, replay {r['replay_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
