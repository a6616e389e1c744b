/**
 * Runs tasks one after another, in the order given: the file stores' writes, each on the file the one
 * before it left. A failing task rejects its own promise only; the queue goes on.
 */
export class SerialQueue {
  /** Tail of the chain; never rejects. */
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const done = this.tail.then(task);
    this.tail = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  /** Settles once every task queued so far has. */
  idle(): Promise<void> {
    return this.tail;
  }
}
