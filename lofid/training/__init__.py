"""Making lofid's own LoRAs: data preparation (`lofid prepare`) and trainers (`lofid train`).

Every module here imports only the standard library at module level, so that
`lofid --help` stays instant; torch, diffusers, PyAV and Pillow are imported inside
the functions that use them.
"""
