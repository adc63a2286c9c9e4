"""The course's figures: one function per picture, each returning the matplotlib Figure.

Figures are drawn with matplotlib so they are saved in the notebook as static images and
show without a kernel. Each lab's figures have a module: temperature (Lab 01), dark_knowledge
(Lab 02), response (Lab 03), hints (Lab 04), compression (Lab 05), teachers (Lab 06); the
figures of several runs of any lab are in runs. Every figure is reachable as ``kd.plot.<name>``.
The numbers they draw (softmax with T, entropy, the temperature's validation) are computed in
``kd.plot.probabilities``, which the explorers (``kd.widgets``) call too; the drawing helpers
the labs' modules share are private to the package (_shared).
"""
from . import probabilities  # noqa: F401
from .runs import learning_curves, mean_std_bars  # noqa: F401
from .temperature import (temperature_curves, entropy_curve, draw_probability_bars,
                          temperature_bars, gradient_scale)  # noqa: F401
from .dark_knowledge import (error_gallery, similarity_heatmap, dark_knowledge_vs_T,
                             soft_target_floor, draw_soft_targets, soft_targets_of_digits,
                             class_map)  # noqa: F401
from .response import (seed_bars, errors_vs_transfer_size, sweep_heatmap, class_accuracy_bars)  # noqa: F401
from .hints import (hint_maps, staged_error_curves)  # noqa: F401
from .compression import (sparsity_curves, pareto_front, pareto_fronts, size_tradeoff, step_curves)  # noqa: F401
from .teachers import (teacher_training_curve, errors_vs_teacher)  # noqa: F401
