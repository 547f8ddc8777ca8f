"""Executor Interface page, Exercise 2: submit() five squares, as_completed().

The exercise: submit 5 tasks that each return the square of their argument,
with a random 0.1-1.0 s sleep so that completion order differs from
submission order, and print the results with as_completed() as they arrive.
This is the lesson's solution (3 workers, a dict {future: input}).

Adaptations:
  * the module comes from the --impl switch (examples/_select.py): `futures`
    is concurrent.futures or cfutures;
  * the sleeps are multiplied by SCALE = 0.1 (0.01-0.1 s) and drawn up front,
    one per input, from a seeded random.Random, so each input always gets
    the same delay (drawing inside the workers would hand the draws to
    whichever thread asks first);
  * completion order still depends on thread scheduling -- which is the
    point of as_completed() -- so the lines are collected in completion order
    and printed sorted by input afterwards, with a check that every submitted
    future was yielded exactly once.
"""
import random
import time

from _select import futures_module

SCALE = 0.1
rng = random.Random(14)
DELAYS = {x: rng.uniform(0.1, 1.0) * SCALE for x in range(5)}


def slow_square(x):
    time.sleep(DELAYS[x])
    return x ** 2


def main():
    lines = {}  # input -> the line the lesson prints, in completion order
    with futures.ThreadPoolExecutor(max_workers=3) as ex:
        futures_to_inputs = {ex.submit(slow_square, i): i for i in range(5)}
        for future in futures.as_completed(futures_to_inputs):
            inp = futures_to_inputs[future]
            lines[inp] = f"Input {inp} -> {future.result()}"
    for inp in sorted(lines):
        print(lines[inp])
    print("every future yielded once:", sorted(lines) == list(range(5)))


if __name__ == "__main__":
    futures = futures_module(__doc__)
    main()
