"""Trainers. `BaseTrainer` owns the loop; each algorithm overrides `compute_loss`."""
