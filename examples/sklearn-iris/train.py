"""Train the sample iris classifier into DIR/model.joblib (what `make run` serves)."""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(directory: str) -> None:
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    joblib.dump(model, target / "model.joblib")
    print(f"trained iris LogisticRegression -> {target / 'model.joblib'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".run/iris")
