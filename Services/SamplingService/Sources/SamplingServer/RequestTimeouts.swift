import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Header and body timeouts: a request whose head is not complete `header` after its first byte
/// arrived, or whose body is not complete `body` after its head, has its connection closed. The
/// idle timeout alone cannot tell a slow client (a byte every second, slowloris) from a working
/// one; these bound the whole head and the whole body. Counted from the first byte the connection
/// receives (a TLS handshake included) and from the end of each response.
///
/// Two handlers share one clock: `RequestTimeouts` sees the HTTP parts (after the codec), and
/// puts a `FirstByte` observer at the front of the pipeline to see bytes arrive. The phases are
/// told to `Connections`, which chooses the idle connection to close when the cap is reached.
final class RequestTimeouts: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Phase { case waiting, head, body, answering }
    private let header: TimeAmount, body: TimeAmount
    private var phase = Phase.waiting
    private var timer: Scheduled<Void>?
    private let connections: Connections
    private var served = false
    /// Whether the current request was answered before its body had all arrived (an early 413 or
    /// 401): its end then makes the connection idle.
    private var answeredEarly = false

    init(header: Duration, body: Duration, connections: Connections) {
        self.header = TimeAmount(header)
        self.body = TimeAmount(body)
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        try? context.pipeline.syncOperations.addHandler(FirstByte(self), position: .first)
        connections.set(ObjectIdentifier(self), channel: context.channel, idle: true, served: false)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        connections.remove(ObjectIdentifier(self))
    }

    /// Bytes arrived: a request's head starts (unless one is already being read or answered).
    func bytesArrived(_ context: ChannelHandlerContext) {
        guard phase == .waiting else { return }
        phase = .head
        arm(header, context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            enter(.body, context)
            arm(body, context)
        case .end:
            timer?.cancel()
            enter(answeredEarly ? .waiting : .answering, context)
            answeredEarly = false
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            served = true
            if phase == .answering { enter(.waiting, context) } else if phase == .body { answeredEarly = true }
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        connections.remove(ObjectIdentifier(self))
        context.fireChannelInactive()
    }

    /// A phase that changes whether the connection may be closed to make room.
    private func enter(_ next: Phase, _ context: ChannelHandlerContext) {
        phase = next
        connections.set(ObjectIdentifier(self), channel: context.channel, idle: next == .waiting, served: served)
    }

    private func arm(_ limit: TimeAmount, _ context: ChannelHandlerContext) {
        timer?.cancel()
        let started = phase, channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limit) { [weak self] in
            guard let self, self.phase == started else { return }
            channel.close(promise: nil)
        }
    }
}

/// Tells `RequestTimeouts` when bytes arrive (at the front of the pipeline, before TLS and the
/// HTTP decoder); passes everything through.
final class FirstByte: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let clock: RequestTimeouts

    init(_ clock: RequestTimeouts) { self.clock = clock }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clock.bytesArrived(context)
        context.fireChannelRead(data)
    }
}
