import HummingbirdCore
import NIOCore

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
