"""Benchmark: the backup scheduler's work per tick with 10,000 volumes with policies.

Times, with an injected clock and backups that return at once:

1. registering 10,000 volumes (``set``) with a mix of hourly, daily, weekly, daily@HH:MM
   and cron policies;
2. an idle tick (nothing due): what the scheduler thread pays each time it wakes;
3. a simulated day, one tick a minute, every due backup started and finished, with the
   plan kept in memory and then in a JSON state file (saved once per tick that changed it).

Prints; it is not a test.

    python benchmarks/backup_scheduler_tick.py [--volumes 10000]
"""

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin.backup.scheduler import BackupScheduler, JsonFileStateStore, MemoryStateStore
from plugin.policy.schedule import parse_schedule

POLICIES = ["daily", "daily", "daily", "hourly", "weekly", "daily@02:30", "15 */6 * * *", "monthly"]


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class Inline:
    def submit(self, fn, *args):
        fn(*args)


def build(volumes, state_store, clock):
    scheduler = BackupScheduler(clock, lambda name: None, concurrency=8, state_store=state_store,
                                tz="Europe/Berlin", executor=Inline())
    schedules = [parse_schedule(text) for text in POLICIES]
    start = time.perf_counter()
    for index in range(volumes):
        scheduler.set(f"volume-{index:05d}", schedules[index % len(schedules)])
    return scheduler, time.perf_counter() - start


def simulate_day(scheduler, clock):
    ticks, started, busiest = 0, 0, 0.0
    start = time.perf_counter()
    for _ in range(24 * 60):
        clock.now += timedelta(minutes=1)
        begin = time.perf_counter()
        count = 0
        while True:  # the thread ticks again as soon as workers are free
            done = scheduler.tick(clock.now)
            ticks += 1
            count += len(done)
            if not done:
                break
        busiest = max(busiest, time.perf_counter() - begin)
        started += count
    return time.perf_counter() - start, ticks, started, busiest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=10000)
    args = parser.parse_args()
    t0 = datetime(2026, 11, 23, tzinfo=UTC)

    clock = Clock(t0)
    scheduler, set_time = build(args.volumes, MemoryStateStore(), clock)
    scheduler.tick(clock.now)
    idle_ticks = 10000
    start = time.perf_counter()
    for _ in range(idle_ticks):
        scheduler.tick(clock.now)
    idle = (time.perf_counter() - start) / idle_ticks
    print(f"{args.volumes} volumes registered in {set_time * 1000:.0f} ms "
          f"({set_time / args.volumes * 1e6:.1f} us each)")
    print(f"idle tick (nothing due):       {idle * 1e6:8.1f} us")

    total, ticks, started, busiest = simulate_day(scheduler, clock)
    print(f"simulated day, memory state:   {total:6.2f} s for {ticks} ticks, {started} backups started; "
          f"{total / ticks * 1e3:.2f} ms per tick, busiest minute {busiest * 1e3:.1f} ms")

    with tempfile.TemporaryDirectory() as folder:
        clock = Clock(t0)
        state = JsonFileStateStore(Path(folder) / "state.json")
        scheduler, set_time = build(args.volumes, state, clock)
        scheduler.tick(clock.now)  # saves the plans of all volumes once
        size = (Path(folder) / "state.json").stat().st_size
        total, ticks, started, busiest = simulate_day(scheduler, clock)
        print(f"simulated day, JSON state:     {total:6.2f} s for {ticks} ticks, {started} backups started; "
              f"{total / ticks * 1e3:.2f} ms per tick, busiest minute {busiest * 1e3:.1f} ms "
              f"(state file {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
