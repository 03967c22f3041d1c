from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest

from plugin.errors import InvalidOption
from plugin.options import parse_restore_ref
from plugin.policy import ids


def first_ids(when, count):
    """The ids a repository tries, in order, for backups begun at ``when``."""
    return list(islice(ids.candidates(when), count))


def test_an_id_with_a_suffix_is_one_restore_from_accepts():
    new = first_ids(datetime(2026, 11, 23, 2, 0, 0, 999999, tzinfo=UTC), 2)[1]
    assert parse_restore_ref(f"data@{new}").backup == new


def test_id_is_the_utc_second():
    berlin = timezone(timedelta(hours=1))
    assert ids.base_id(datetime(2026, 11, 23, 3, 0, 0, 500000, tzinfo=berlin)) == "20261123T020000Z"


def test_same_second_gets_suffixes_in_order():
    when = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    taken = first_ids(when, 12)
    assert taken[:3] == ["20261123T020000Z", "20261123T020000Z-1", "20261123T020000Z-2"]
    assert len(set(taken)) == 12
    assert sorted(taken, key=ids.sort_key) == taken  # -9 before -10
    assert sorted(taken) != taken  # plain string order would be wrong


def test_id_time_round_trip_and_order_across_seconds():
    first = ids.base_id(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    second = ids.base_id(datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC))
    assert ids.id_time(first) == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert ids.id_time(second + "-3") == datetime(2027, 1, 1, tzinfo=UTC)
    assert ids.sort_key(first + "-9999") < ids.sort_key(second)


@pytest.mark.parametrize("bad", ["latest", "20261123T020000", "20261123T020000Z-12345", "../x",
                                 "20261123T020000Z\n", "20261340T020000Z"])
def test_bad_ids_are_refused_with_the_accepted_shape(bad):
    with pytest.raises(InvalidOption, match="is not a backup id"):
        ids.id_time(bad)


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        ids.base_id(datetime(2026, 11, 23))
