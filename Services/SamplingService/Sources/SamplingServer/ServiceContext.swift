import Hummingbird
import NIOCore

/// The request context of the service: Hummingbird's, plus the connection's channel, so that a
/// request can tell when its client has gone (its queued work is then dropped unrun).
public struct ServiceContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
