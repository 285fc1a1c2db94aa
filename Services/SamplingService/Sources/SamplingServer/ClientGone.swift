import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Watches a connection for its client going away: the end of its input (the server allows
/// half-closed connections, so a client's close arrives as that event, not as the channel
/// closing) or the channel becoming inactive. A request whose client has gone is dropped if it
/// still waits for a batch (`Batcher.submit(gone:)`); a client that half-closes after sending its
/// request counts as gone.
final class ClientGone: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // The HTTP parts pass through untouched.
    typealias InboundIn = NIOAny

    /// Completed on the channel's event loop when the client has gone; set when the handler is added.
    private(set) var gone: EventLoopFuture<Void>?
    private var promise: EventLoopPromise<Void>?

    func handlerAdded(context: ChannelHandlerContext) {
        let p = context.eventLoop.makePromise(of: Void.self)
        promise = p
        gone = p.futureResult
        // HTTP/1.0 closes after its response unless it asks to be kept alive: marked where the
        // request's version is still known, before it becomes an HTTPTypes request.
        if let codec = try? context.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self) {
            try? context.pipeline.syncOperations.addHandler(HTTP10Close(), position: .before(codec))
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { promise?.succeed() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { promise?.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.succeed()
        context.fireChannelInactive()
    }

    /// The future of the channel's watcher (nil when the channel has none).
    static func future(of channel: any Channel) -> EventLoopFuture<Void>? {
        try? channel.pipeline.syncOperations.handler(type: ClientGone.self).gone
    }
}

/// Marks an HTTP/1.0 request without `Connection: keep-alive` as `Connection: close`, so the server
/// closes the connection after answering it, as HTTP/1.0 says (the server otherwise keeps every
/// connection alive).
final class HTTP10Close: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data), head.version == .http1_0,
              !head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "keep-alive" }) else {
            context.fireChannelRead(data)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }
}
