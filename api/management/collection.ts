/**
 * The routes of a collection (`path`) and of its items (`path/:param`) that make one call and answer a
 * view of what it returns, each given as that call and that view. Routes that do more are written out
 * beside them with `h` and `create`.
 */
import type { RequestHandler, Router } from 'express'
import type { Page, PageRequest } from '../../control-plane/index.ts'
import { pageRequest, pageView, type Ctx, type Handler } from './http.ts'

/** The express handler of a Handler: `h` for most routes, `create` for those honouring Idempotency-Key. */
export interface Mounts {
  h: (handler: Handler) => RequestHandler
  create: (handler: Handler) => RequestHandler
}

/** A handler's context on an item: its id (the path parameter) at hand. */
export type ItemCtx = Ctx & { id: string }

/** What leaves the process of a result (the request's context at hand, e.g. for the principal). */
type View<T> = (t: T, ctx: Ctx) => unknown

export function collection(r: Router, mounts: Mounts, path: string, param: string) {
  const item = `${path}/:${param}`
  const onItem = (ctx: Ctx): ItemCtx => ({ ...ctx, id: ctx.params[param]! })
  const answer =
    <T>(call: (ctx: ItemCtx) => Promise<T>, view: View<T>, status: number): Handler =>
    async (ctx) => ({ status, body: view(await call(onItem(ctx)), ctx) })
  return {
    /** GET path: a page of views. */
    list: <T>(read: (ctx: Ctx, page: PageRequest) => Promise<Page<T>>, view: View<T>) =>
      r.get(
        path,
        mounts.h(async (ctx) => ({
          status: 200,
          body: pageView(await read(ctx, pageRequest(ctx.query)), (t) => view(t, ctx)),
        })),
      ),
    /** POST path: 201 with the view of what was made (Idempotency-Key honoured). */
    create: <T>(make: (ctx: Ctx) => Promise<T>, view: View<T>) => r.post(path, mounts.create(answer(make, view, 201))),
    /** GET path/:param, or a part of it (`part`, e.g. /status). */
    get: <T>(read: (ctx: ItemCtx) => Promise<T>, view: View<T>, part = '') =>
      r.get(item + part, mounts.h(answer(read, view, 200))),
    /** PATCH path/:param. */
    update: <T>(change: (ctx: ItemCtx) => Promise<T>, view: View<T>) =>
      r.patch(item, mounts.h(answer(change, view, 200))),
    /** Another method on the item or a part of it: 200 unless `status` says otherwise. */
    act: <T>(
      method: 'post' | 'put' | 'delete',
      part: string,
      act: (ctx: ItemCtx) => Promise<T>,
      view: View<T>,
      o: { status?: number; idempotent?: boolean } = {},
    ) => r[method](item + part, (o.idempotent ? mounts.create : mounts.h)(answer(act, view, o.status ?? 200))),
    /** POST path/:param + part: a new credential, 201 (Idempotency-Key honoured); the old one lasts the overlap. */
    rotate: <T>(part: string, rotate: (ctx: ItemCtx, overlapSeconds: number) => Promise<T>, view: View<T>) =>
      r.post(item + part, mounts.create(answer((ctx) => rotate(ctx, ctx.body?.overlapSeconds ?? 86400), view, 201))),
    /** DELETE path/:param: 204 without a body. */
    remove: (remove: (ctx: ItemCtx) => Promise<unknown>) =>
      r.delete(
        item,
        mounts.h(async (ctx) => {
          await remove(onItem(ctx))
          return { status: 204 }
        }),
      ),
  }
}
