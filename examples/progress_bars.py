"""Progress bars with tqdm, as people write them around concurrent.futures.

Two patterns: a bar over as_completed() (advances as each future finishes,
in completion order) and a bar over executor.map() (advances as results are
taken, in order).  tqdm draws on stderr; stdout gets the results and each
bar's final count, which must be the same under both modules.

    python examples/progress_bars.py --impl cfutures

(needs tqdm: pip install tqdm)
"""
import io
import time

from tqdm import tqdm

from _select import futures_module

SCALE = 0.01


def work(x):
    time.sleep((x % 3) * SCALE)
    return x * x


def main():
    items = list(range(20))
    bars = io.StringIO()            # where the bars draw (stderr in real use)
    with futures.ThreadPoolExecutor(max_workers=4) as ex:
        fs = [ex.submit(work, x) for x in items]
        done = []
        with tqdm(futures.as_completed(fs), total=len(fs), file=bars) as bar:
            for f in bar:
                done.append(f.result())
            print("as_completed bar:", bar.n, "of", bar.total)
        print("results:", sorted(done))

        with tqdm(ex.map(work, items), total=len(items), file=bars) as bar:
            mapped = list(bar)
            print("map bar:", bar.n, "of", bar.total)
        print("results:", mapped)


if __name__ == "__main__":
    futures = futures_module(__doc__)
    main()
