"""hzm.db.context_tokens: the token a tenant context is entered with, to the string."""

import hashlib
import hmac

import pytest

from hzm.db import context_tokens
from hzm.db.context_tokens import Backend, Claims

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AT = Backend(pid=4242, transaction_start=1_796_420_734_158_067)


def test_a_token_is_its_claims_and_their_hmac():
    claims = Claims(tenant_id=7, user_id=12, expires=1_796_424_334, backend=AT)
    message = "v1.7.12.1796424334.4242.1796420734158067"
    assert context_tokens.message(claims) == message
    expected = hmac.new(KEY, message.encode(), hashlib.sha256).hexdigest()
    assert context_tokens.sign(claims, KEY) == f"{message}.{expected}"


def test_no_tenant_or_user_is_an_empty_part():
    claims = Claims(tenant_id=None, user_id=None, expires=1, backend=AT)
    assert context_tokens.message(claims) == "v1...1.4242.1796420734158067"


def test_claims_for_expire_a_lifetime_after_the_transactions_start_on_the_database_clock():
    claims = context_tokens.claims_for(3, None, AT, 3600)
    assert claims == Claims(3, None, 1_796_420_734 + 3600, AT)
    assert AT.transaction_start_seconds == 1_796_420_734


@pytest.mark.parametrize("bad", [-1, 2**31, True, "7", 7.0])
def test_ids_must_be_integers_postgresql_can_hold(bad):
    with pytest.raises(ValueError, match="integer id"):
        context_tokens.message(Claims(bad, None, 1, AT))
    with pytest.raises(ValueError, match="integer id"):
        context_tokens.message(Claims(1, bad, 1, AT))


def test_verify_reads_back_what_sign_wrote_with_any_of_the_keys():
    claims = Claims(tenant_id=0, user_id=2**31 - 1, expires=5, backend=AT)
    token = context_tokens.sign(claims, KEY)
    assert context_tokens.verify(token, (KEY,)) == claims
    assert context_tokens.verify(token, (OTHER_KEY, KEY)) == claims  # rotation: all verify
    assert context_tokens.verify(token, (OTHER_KEY,)) is None


@pytest.mark.parametrize("part", range(6))
def test_changing_any_signed_part_breaks_the_signature(part):
    token = context_tokens.sign(Claims(7, 12, 99, AT), KEY)
    parts = token.split(".")
    parts[part] = {"v1": "v2"}.get(parts[part], parts[part] + "1" if parts[part] else "1")
    assert context_tokens.verify(".".join(parts), (KEY,)) is None


@pytest.mark.parametrize(
    "text",
    ["", "v1", "v1.1.1.1.1.1", "v1.01.1.1.1.1." + "0" * 64, "v1.1.1.1.1.1." + "0" * 63 + "g"],
)
def test_malformed_tokens_verify_as_nothing(text):
    assert context_tokens.verify(text, (KEY,)) is None
