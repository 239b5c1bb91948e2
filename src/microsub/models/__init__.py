"""From-scratch estimators (gradient descent, boosted trees) with scikit-learn's API."""
