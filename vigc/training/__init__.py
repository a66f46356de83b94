"""Building blocks of the training workflow (`vigc.tasks.train`): optimiser and schedule, precision, LoRA,
checkpoints with exact resume, the batch stream, validation and metrics.
"""
