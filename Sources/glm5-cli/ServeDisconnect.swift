// glm5 serve: noticing that a client went away while its non-streaming request waits or runs, so
// that the job is aborted and its session freed (a streaming request notices on its next write).
//
// Hummingbird does not cancel a handler when its connection closes, and it keeps a connection
// whose client shut its sending side open (remote half-closure), so the end of a client's input
// is the only signal: a small handler at the front of the connection's pipeline reports the
// input's end (ChannelEvent.inputClosed) or the connection's (channelInactive) while a request
// watches, and is removed when the answer is ready. Consequence: a client that half-closes its
// socket after sending a request and then waits for the answer is taken as gone (Python's urllib
// and http.client, which the tests use, keep it open until they have the answer).

import Hummingbird
import NIOCore
import Synchronization

/// The request context of `glm5 serve`: Hummingbird's basic context plus the connection.
struct ServeContext: RequestContext {
  var coreContext: CoreRequestContextStorage
  let channel: any Channel

  init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    channel = source.channel
  }
}

/// Reports the end of the connection's input, or of the connection, once.
final class DisconnectHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = NIOAny
  private let onGone: @Sendable () -> Void
  private var fired = false

  init(onGone: @escaping @Sendable () -> Void) { self.onGone = onGone }

  private func gone() {
    if !fired { fired = true; onGone() }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let e = event as? ChannelEvent, case .inputClosed = e { gone() }
    context.fireUserInboundEventTriggered(event)
  }

  func channelInactive(context: ChannelHandlerContext) {
    gone()
    context.fireChannelInactive()
  }
}

/// Set once the answer is ready: a later end of input is the next request's business.
final class AnsweredFlag: Sendable {
  let value = Atomic<Bool>(false)
}

enum DisconnectWatch {
  private static let counter = Atomic<Int>(0)

  /// Run `body` while watching the connection; `onGone` runs (on the connection's event loop)
  /// if the client goes away before `body` returns.
  static func watching<T: Sendable>(_ channel: any Channel, onGone: @escaping @Sendable () -> Void,
                                    _ body: () async throws -> T) async throws -> T {
    let name = "glm5.disconnect.\(counter.add(1, ordering: .relaxed).newValue)"
    let done = AnsweredFlag()
    let report: @Sendable () -> Void = { if !done.value.load(ordering: .acquiring) { onGone() } }
    let added = (try? await channel.eventLoop.submit {
      try channel.pipeline.syncOperations.addHandler(DisconnectHandler(onGone: report), name: name, position: .first)
    }.get()) != nil
    defer {
      done.value.store(true, ordering: .releasing)
      if added { channel.pipeline.removeHandler(name: name, promise: nil) }
    }
    return try await body()
  }
}
