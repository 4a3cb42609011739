"""nnU-Net v2's default trainer with a budget a 2-core CPU can finish: the one thing changed is how long it
trains (and test-time mirroring, which multiplies validation time by four in 2-D). Everything else -- the
plan, the network, the loss (Dice + CE with deep supervision), SGD with Nesterov momentum and the poly
learning-rate schedule (over these epochs), the data augmentation -- is nnU-Net's own.

nnU-Net finds trainers by class name inside its own package, so run_nnunet_cpu.sh copies this file into
nnunetv2/training/nnUNetTrainer/ of nnU-Net's environment; it is never imported by islesbench. The budget
is read from the environment (defaults below), so the recipe states it in one place:

    ISLESBENCH_NNUNET_EPOCHS          epochs (nnU-Net's default 1000)
    ISLESBENCH_NNUNET_ITERATIONS      training iterations per epoch (default 250)
    ISLESBENCH_NNUNET_VAL_ITERATIONS  validation-loss iterations per epoch (default 50)
"""

import os

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_islesbenchCPU(nnUNetTrainer):
    """nnUNetTrainer with a reduced, stated budget and no test-time mirroring."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("ISLESBENCH_NNUNET_EPOCHS", 4))
        self.num_iterations_per_epoch = int(os.environ.get("ISLESBENCH_NNUNET_ITERATIONS", 25))
        self.num_val_iterations_per_epoch = int(os.environ.get("ISLESBENCH_NNUNET_VAL_ITERATIONS", 2))
        self.save_every = 1  # a killed CPU run resumes (nnUNetv2_train --c) from its last epoch

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        # Training-time mirroring (augmentation) stays; only the 4x test-time mirroring of validation goes.
        rotation, dummy_2d, patch_size, mirror_axes = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, patch_size, mirror_axes
