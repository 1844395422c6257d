"""What operators and sensors share (no sensor imports an operator module): the task base, the worker
side of waiting, and the ledger that keeps a paid request from being paid twice."""
