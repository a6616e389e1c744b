/**
 * One pub/sub channel heard by this process: a subscriber connection of its own, whose messages go
 * to `onMessage`. Used for hints between processes (events appended, a session slot wanted).
 *
 * Redis pub/sub delivers at most once, to connected subscribers only
 * (https://redis.io/docs/latest/develop/interact/pubsub/#delivery-semantics): a message sent while this
 * connection is down is lost, which is why every user of a channel also looks now and then by itself.
 * On a Redis Cluster, a (non-sharded) PUBLISH reaches subscribers on every node, so one subscriber
 * connection to any node hears every message.
 */
import { Cluster } from 'ioredis';
import { connectRedis, type RedisClient } from './redis-connection.js';

/** How long `start` waits for the first subscription; a Redis that is down is subscribed to when it is back. */
const SUBSCRIBE_WAIT_MS = 2000;

export class RedisChannel {
  private subscriber: RedisClient | undefined;
  private started: Promise<boolean> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly channel: string,
    private readonly onMessage: (message: string) => void,
    /** Called when the channel is subscribed again after a lost connection: messages may have been missed. */
    private readonly onResubscribed?: () => void,
  ) {}

  /** Subscribes once (later calls answer the first call's outcome): whether it is subscribed now. */
  start(): Promise<boolean> {
    this.started ??= this.subscribe();
    return this.started;
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.started = Promise.resolve(false);
    subscriber?.disconnect();
  }

  private async subscribe(): Promise<boolean> {
    // A subscribed connection can run no other command: it is a connection of its own. Lazy, so
    // that it connects here (and this can wait for it) whatever the shared client was made with.
    // Resubscribed by the 'ready' handler below, not by ioredis itself: its own resubscribe's rejection
    // (the connection dropping again at once, with no offline queue) is never handled.
    const subscriber: RedisClient =
      this.redis instanceof Cluster ? this.redis.duplicate(undefined, { lazyConnect: true }) : this.redis.duplicate({ lazyConnect: true, autoResubscribe: false });
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined); // outages are the main connection's users' to report
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.onMessage(message);
    });
    // Subscribed again on every (re)connect: ioredis resubscribes by itself only when the first
    // subscription succeeded, and one that failed while Redis was down is made when it is back.
    // A connection that closes after the first subscription may have missed messages meanwhile.
    let subscribedOnce = false;
    let lost = false;
    subscriber.on('close', () => {
      if (subscribedOnce) lost = true;
    });
    subscriber.on('ready', () => {
      const missed = lost;
      lost = false;
      subscriber.subscribe(this.channel).then(
        () => {
          subscribedOnce = true;
          if (missed && this.subscriber === subscriber) this.onResubscribed?.();
        },
        () => undefined,
      );
    });
    if (!(await connectRedis(subscriber, SUBSCRIBE_WAIT_MS))) return false;
    if (this.subscriber !== subscriber) return false; // closed meanwhile
    try {
      await subscriber.subscribe(this.channel);
      subscribedOnce = true;
      return true;
    } catch {
      return false;
    }
  }
}
