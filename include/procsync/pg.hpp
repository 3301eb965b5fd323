// procsync/pg.hpp — procsync's primitives for processes on several machines,
// backed by a PostgreSQL server (links libpq: Meson dependency('procsync-pg'),
// pkg-config procsync-pg, CMake procsync::pg).
//
//   procsync::pg::session s{"host=/run/postgresql dbname=app"};
//   procsync::pg::mutex m{s, "orders"};              // Lockable + TimedLockable
//   procsync::pg::shared_mutex sm{s, "catalog"};     // SharedLockable + timed
//   procsync::pg::counting_semaphore sem{s, "rooms", 3};
//   procsync::pg::event ev{s, "ready"};
//   procsync::pg::shared_value<long> total{s, "total", 0};
//
// Not part of procsync.hpp: programs that do not use it need no libpq.
// When to use which backend, costs and failover: docs/pg.md.
#pragma once

#include "pg/event.hpp"
#include "pg/mutex.hpp"
#include "pg/semaphore.hpp"
#include "pg/session.hpp"
#include "pg/shared_value.hpp"
