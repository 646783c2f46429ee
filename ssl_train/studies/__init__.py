"""Studies: commands that measure or choose a setting rather than build what ships (each is a
``python -m ssl_train`` command; ``cli.py`` holds their options and handlers).

- ``budget``          pretraining epochs per task, chosen on a validation split (``budget``)
- ``finetune_lr``     each encoder's fine-tuning learning rate, chosen on validation (``finetune-lr``; ``release`` runs it)
- ``rotation_limits`` why rotation prediction errs on these photos: per angle, per class, vs symmetry (``rotation-limits``)
- ``runs_table``      pretraining runs side by side: options, epochs, pretext scores, time (``runs``)
- ``bench``           images/s of the training step, device-resident path vs a DataLoader (``bench``)
"""
