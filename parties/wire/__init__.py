"""Generated from protos/airlock.proto by scripts/gen_protos.sh; do not edit."""
