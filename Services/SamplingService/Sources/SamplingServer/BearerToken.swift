import Hummingbird
import HTTPTypes

/// Optional authentication of `/v1/*`: with a token configured (`--token-file`), those requests
/// need `Authorization: Bearer <token>`, else 401 with `WWW-Authenticate: Bearer`. The health,
/// readiness and metrics endpoints stay open (probes and scrapers hold no token). The comparison
/// takes the same time wherever the given token first differs.
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let given = header.hasPrefix("Bearer ") ? Array(header.dropFirst(7).utf8) : []
        guard Self.equal(given, token) else {
            context.logger.notice("\(request.method) \(request.uri.path): 401 bearer token \(header.isEmpty ? "missing" : "wrong")")
            var response = SamplingService.failure(ServiceError(401, field: "authorization", "needs the service's bearer token (Authorization: Bearer TOKEN)"))
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    /// Whether `a` equals `b`, in time that depends on their lengths only.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return diff == 0
    }
}
