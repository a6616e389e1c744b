/**
 * One log line per request, written when it is answered, with what Fastify's "incoming request"
 * line would have said (method, URL, remote address) and its outcome (status, time). Fastify's
 * default is two lines per request; on a busy gateway that doubles the logging cost for nothing.
 * (At LOG_LEVEL=debug the incoming line is written too, so a request that is never answered shows.)
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

export class OneLinePerRequest extends LogController {
  /** At debug only: the line written when the request is answered says the same. */
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const entry = { req: request, res: reply, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...entry, err: error }, 'request errored');
    else reply.log.info(entry, 'request completed');
  }
}
