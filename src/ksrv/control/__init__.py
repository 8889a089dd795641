"""Reconcile desired -> actual. Pure decisions (runtime selection, plans) live beside the I/O."""
