// Copyright (c) vnuma.libvirt contributors
// GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// Appended to a copy of a report by tests/browser/test_reports.py, run by the headless browser once the
// page is laid out.  It measures the page and writes what it found into the <body>'s data-vn-check
// attribute (read back from --dump-dom): the page's scroll width against the window's, every element
// that reaches past the window's right edge outside a box that scrolls by itself, and each SVG's size.
(function () {
  var root = document.documentElement;
  var wide = [];
  // An element inside a box that scrolls (or clips) sideways does not widen the page, as long as the box fits.
  function contained(element) {
    for (var up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      var overflow = getComputedStyle(up).overflowX;
      if (overflow === 'auto' || overflow === 'scroll' || overflow === 'hidden') {
        return up.getBoundingClientRect().right <= innerWidth + 0.5;
      }
    }
    return false;
  }
  var all = document.body.querySelectorAll('*');
  for (var i = 0; i < all.length; i++) {
    var box = all[i].getBoundingClientRect();
    if (box.right > innerWidth + 0.5 && !contained(all[i])) {
      wide.push(all[i].tagName.toLowerCase() + (all[i].className && all[i].className.baseVal === undefined ? '.' + all[i].className : '')
        + ' ' + Math.round(box.left) + '..' + Math.round(box.right));
    }
  }
  var svgs = [];
  document.querySelectorAll('svg').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    svgs.push({width: Math.round(box.width), height: Math.round(box.height), right: Math.round(box.right),
               texts: svg.querySelectorAll('text').length});
  });
  // Boxes that scroll sideways because their content is wider than they are (a table that does not fit).
  var scrolled = [];
  document.querySelectorAll('.scroll').forEach(function (box) {
    if (box.scrollWidth > box.clientWidth) scrolled.push(box.firstElementChild.tagName.toLowerCase() + ' ' + box.scrollWidth + '>' + box.clientWidth);
  });
  document.body.setAttribute('data-vn-check', JSON.stringify({
    scrollWidth: root.scrollWidth, innerWidth: innerWidth, wide: wide.slice(0, 20), svgs: svgs, scrolled: scrolled
  }));
})();
