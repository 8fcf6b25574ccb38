"""The walkthrough protocol: every role sends the kinds of message it is
permitted to send, so that one run exercises the whole runtime (mTLS,
signatures, rules, guarantees, logs) across the five roles.

Steps (sender -> receiver: labels):

- dataset_commitment  data_contributor -> model_creator: train:{sender} as digest
- model_card          model_creator -> deployer: weights:{sender} as digest,
                      model_card:{sender} public
- catalog_request     end_user -> external_database: catalog:{receiver} public
- catalog             external_database -> end_user (reply): catalog:{sender} public
- sealed_prompt       end_user -> deployer: prompt:{sender} as ciphertext (or plaintext,
                      which only a scenario whose guarantees allow it will admit)
- prompt_receipt      deployer -> end_user (reply): prompt:{receiver} as digest

Files: rules.py (the steps, what may cross), roles.py (each role's honest
logic and typed state), adversaries.py (what a scenario can switch on:
plaintext_prompt, leaked_prompt, mislabeled_prompt, forward_prompt,
tainted_catalog), protocol.py (the protocol, assembled), tests/.
"""

from protocols.walkthrough.protocol import PROTOCOL

__all__ = ["PROTOCOL"]
