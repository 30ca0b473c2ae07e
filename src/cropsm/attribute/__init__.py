"""Control experiments: which feature groups determine soil moisture (paper sections 2c(1), 2c(3)).

* :mod:`cropsm.attribute.station` -- station level (Fig. 5): the full networks and one reduced set
  per omitted feature group, trained with the full model's hyperparameters and split; the R2 loss
  of each, ranked per layer.
* :mod:`cropsm.attribute.national` -- national level (Fig. 6): median annual top-layer soil
  moisture of the reference product made with each reduced model set, minus the full reference.
* :mod:`cropsm.attribute.stage` -- the ``attribute`` stage of ``cropsm run``;
  :mod:`cropsm.attribute.commands` -- ``cropsm attribute RUN_DIR``.
"""
