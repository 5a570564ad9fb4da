"""The unlock-line flows the SIP tests key, shared by make_pcaps.py, make_scenarios.py and tests/sipp.py.

Each flow is the key groups of one caller's answers, in order (one group per prompt), as in
the audio fixtures named beside it (checked against audio_fixtures/*.yaml). The line keeps
keys typed ahead during a prompt, so a scenario may send every group early, about one per
second, and then wait for the line to hang up.
"""

from __future__ import annotations

from dataclasses import dataclass

UNLOCK_LINE = "950183313"
SUPPORT_LINE = "901511000"


@dataclass(frozen=True)
class Flow:
    name: str
    groups: tuple[str, ...]  # keys answering each prompt, in order
    caller: str  # caller ID: the From user part
    outcome: str  # the call record's outcome on the real server
    fixture: str  # the audio fixture the keys come from
    dialed: str = UNLOCK_LINE

    @property
    def keys(self) -> str:
        return "".join(self.groups)


FLOWS = {f.name: f for f in (
    # 1 Spanish, 3 signature, 1 unlock, 2 ..., DNI, card last 4, PIN
    Flow("signature_unlock", ("1", "3", "1", "2", "17654321", "5555", "5555"), "+34600000005",
         "signature_unlocked", "noisy-line-es.yaml (leaf-signature-unlock-es-keys.yaml uses +34600000001)"),
    Flow("recover_user", ("1", "1", "1", "1", "12345678", "4567", "1234"), "+34600000001",
         "credentials_sent", "leaf-recover-user-ebanking-dni-es-keys.yaml"),
    Flow("operation_unlock", ("1", "2", "20261129001#"), "+34600000001",
         "operation_code_sent", "leaf-operation-unlock-es-keys.yaml"),
    # 0 at the main menu: the line plays the agent message, then REFERs the caller
    Flow("agent_request", ("1", "0"), "+34600000001", "transferred", "leaf-agent-request-es-keys.yaml"),
    # the caller hangs up after two PIN digits
    Flow("bye_mid_pin", ("1", "1", "1", "1", "12345678", "4567", "12"), "+34600000001",
         "caller_hung_up", "hang-up-mid-pin-es.yaml"),
)}
