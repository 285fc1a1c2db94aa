import Hummingbird
import Logging

/// The optional access log (`ServerConfiguration.accessLog`): one line per answered request, with
/// its method, path, status, body bytes, time and the client's address, under Hummingbird's
/// request id (`hb.request.id`), as the refusals are.
struct AccessLog: RouterMiddleware {
    typealias Context = ServiceContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, context, status: Int(response.status.code), bytes: response.body.contentLength, since: start)
            return response
        } catch {
            // Errors that reach Hummingbird (a 404 of an unknown path, say) are answered by it.
            log(request, context, status: Int((error as? any HTTPResponseError)?.status.code ?? 500), bytes: nil, since: start)
            throw error
        }
    }

    private func log(_ request: Request, _ context: Context, status: Int, bytes: Int?, since start: ContinuousClock.Instant) {
        let peer = context.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let ms = String(format: "%.1f", (ContinuousClock.now - start).seconds * 1000)
        context.logger.info("\(request.method) \(request.uri.path) \(status) \(bytes.map(String.init) ?? "-") B \(ms) ms from \(peer)")
    }
}
