"""The generative model the protocols share (training, MPC, enclave serving)."""
