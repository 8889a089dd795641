"""Write the example's files under DIR (default .run/outlier-detection): the iris classifier
the predictor serves (`iris/model.joblib`), and the detector's reference set with the same
classifier beside it (`detector/reference.csv`, `detector/classifier.joblib`), all from the
iris data set scikit-learn ships."""

import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

FEATURES = "sepal_length,sepal_width,petal_length,petal_width"


def main(directory: str) -> None:
    root = Path(directory)
    (root / "iris").mkdir(parents=True, exist_ok=True)
    (root / "detector").mkdir(parents=True, exist_ok=True)
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    joblib.dump(model, root / "iris" / "model.joblib")
    joblib.dump(model, root / "detector" / "classifier.joblib")
    np.savetxt(root / "detector" / "reference.csv", features, delimiter=",", header=FEATURES,
               comments="", fmt="%.2f")  # fmt: skip
    print(f"wrote {root}/iris/model.joblib and {root}/detector/{{reference.csv,classifier.joblib}}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".run/outlier-detection")
