"""``python -m magicdec_model.validate``: the validate command, as torchrun starts it on every rank.

Takes the same flags as ``magicdec-model validate``; under torchrun, ``WORLD_SIZE``/``RANK`` set the
tensor-parallel group (``torchrun --nproc_per_node=8 -m magicdec_model.validate --device cuda ...``).
"""

from magicdec_model.cli.validate import validate_main

if __name__ == "__main__":
    validate_main()
