--[[
Finish the assembled report (report.qmd with its chapters included) for pandoc's HTML
and Typst writers. It does the part of Quarto's work that plain pandoc lacks:

  * numbers figures and tables in document order; in HTML their captions start with
    "Figure N: " and "Table N: " (Typst numbers its figures itself, the same way);
  * resolves @fig-x, @tbl-x and @sec-x references: a link "Figure N" in HTML, a Typst
    reference in Typst; an unknown label becomes "??" with a warning, because Typst
    would fail on it, and any other citation stays as the text written;
  * renders Quarto callouts (::: {.callout-warning title="..."}) as a styled box;
  * in HTML, replaces the raw Typst block that calls #outline (report.qmd places it
    where the table of contents belongs) with a numbered table of contents;
  * strips dermaudit-media-prefix (metadata) from image paths, so that the
    project-root paths that Quarto needs become paths relative to the working directory.
]]

local is_html = FORMAT:match("html") ~= nil
local is_typst = FORMAT:match("typst") ~= nil

local CALLOUT_COLORS = {
  warning = { fill = "rgb(\"#fff4e5\")", stroke = "rgb(\"#e8590c\")" },
  important = { fill = "rgb(\"#fdecea\")", stroke = "rgb(\"#c92a2a\")" },
  caution = { fill = "rgb(\"#fdecea\")", stroke = "rgb(\"#c92a2a\")" },
  note = { fill = "rgb(\"#e7f1fb\")", stroke = "rgb(\"#1c7ed6\")" },
  tip = { fill = "rgb(\"#ebfbee\")", stroke = "rgb(\"#2f9e44\")" },
}

local function strip_media_prefix(doc)
  local prefix = pandoc.utils.stringify(doc.meta["dermaudit-media-prefix"] or "")
  if prefix == "" then
    return doc
  end
  return doc:walk({
    Image = function(image)
      if image.src:sub(1, #prefix) == prefix then
        image.src = image.src:sub(#prefix + 1)
      end
      return image
    end,
  })
end

-- Map every figure, table and sec-* section id to its kind and number, in document
-- order. Section numbers come from pandoc's own sectioning, which --number-sections uses.
local function number_targets(doc)
  local numbers = {}
  local counts = { Figure = 0, Table = 0 }
  local function count(el)
    counts[el.t] = counts[el.t] + 1
    if el.identifier ~= "" then
      numbers[el.identifier] = { kind = el.t, number = tostring(counts[el.t]) }
    end
  end
  doc:walk({ Figure = count, Table = count })

  local sections = pandoc.structure.make_sections(doc.blocks, { number_sections = true })
  pandoc.Blocks(sections):walk({
    Div = function(div)
      local number = div.attributes["number"]
      if number ~= nil and div.identifier:match("^sec%-") then
        numbers[div.identifier] = { kind = "Section", number = number }
      end
    end,
  })
  return numbers
end

-- Typst counts uncaptioned figures and tables too but shows no label for them, so
-- HTML numbers them the same way and labels only the captioned ones.
local function label_caption(caption, text)
  if #caption.long == 0 then
    return caption
  end
  local label = pandoc.Span({ pandoc.Str(text) }, pandoc.Attr("", { "caption-label" }))
  local first = caption.long[1]
  first.content:insert(1, label)
  first.content:insert(2, pandoc.Space())
  return caption
end

local function html_caption_labels(doc)
  local counts = { Figure = 0, Table = 0 }
  local function label(el)
    counts[el.t] = counts[el.t] + 1
    el.caption = label_caption(el.caption, el.t .. " " .. counts[el.t] .. ":")
    return el
  end
  return doc:walk({ Figure = label, Table = label })
end

local function is_crossref(id)
  return id:match("^fig%-") or id:match("^tbl%-") or id:match("^sec%-")
end

-- A citation that is no cross-reference stays as the text it was written as, because
-- the report has no bibliography and Typst fails on a citation without one.
local function resolve_crossrefs(doc, numbers)
  return doc:walk({
    Cite = function(cite)
      local id = cite.citations[1].id
      if not is_crossref(id) then
        return cite.content
      end
      local target = numbers[id]
      if target == nil then
        pandoc.log.warn("reference @" .. id .. " points to no figure, table or section in the report")
        return pandoc.Str("??")
      end
      if is_html then
        return pandoc.Link(target.kind .. "\u{a0}" .. target.number, "#" .. id)
      end
      -- A Typst reference to the label prints "Figure N", "Table N" or "Section N".
      return pandoc.RawInline("typst", "@" .. id)
    end,
  })
end

local function callout_kind(div)
  for _, class in ipairs(div.classes) do
    local kind = class:match("^callout%-(%a+)$")
    if kind ~= nil then
      return kind
    end
  end
  return nil
end

local function html_callout(div, kind, title)
  div.classes = { "callout", "callout-" .. kind }
  div.attributes["role"] = "note"
  div.attributes["title"] = nil
  if title ~= "" then
    local heading = pandoc.Div({ pandoc.Plain({ pandoc.Strong({ pandoc.Str(title) }) }) }, pandoc.Attr("", { "callout-title" }))
    div.content:insert(1, heading)
  end
  return div
end

local function typst_callout(div, kind, title)
  local colors = CALLOUT_COLORS[kind] or CALLOUT_COLORS.note
  local open = "#block(width: 100%, inset: 10pt, radius: 3pt, breakable: false, fill: "
    .. colors.fill .. ", stroke: (left: 4pt + " .. colors.stroke .. ", rest: 0.5pt + " .. colors.stroke .. "))["
  local blocks = pandoc.List({ pandoc.RawBlock("typst", open) })
  if title ~= "" then
    blocks:insert(pandoc.Para({ pandoc.Strong({ pandoc.Str(title) }) }))
  end
  blocks:extend(div.content)
  blocks:insert(pandoc.RawBlock("typst", "]"))
  return blocks
end

local function render_callouts(doc)
  return doc:walk({
    Div = function(div)
      local kind = callout_kind(div)
      if kind == nil then
        return nil
      end
      local title = div.attributes["title"] or ""
      if is_typst then
        return typst_callout(div, kind, title)
      end
      return html_callout(div, kind, title)
    end,
  })
end

local function is_outline_block(block)
  return block.t == "RawBlock" and block.format == "typst" and block.text:match("#outline") ~= nil
end

local function html_toc(doc)
  local depth = tonumber(pandoc.utils.stringify(doc.meta["toc-depth"] or "2")) or 2
  local sections = pandoc.structure.make_sections(doc.blocks, { number_sections = true })
  local toc = pandoc.structure.table_of_contents(sections, { toc_depth = depth, number_sections = true })
  local nav = pandoc.List({
    pandoc.RawBlock("html", '<nav id="TOC" class="toc" role="doc-toc">'),
    pandoc.Div({ pandoc.Plain({ pandoc.Str("Contents") }) }, pandoc.Attr("", { "toc-title" })),
    toc,
    pandoc.RawBlock("html", "</nav>"),
  })

  local blocks = pandoc.List()
  for _, block in ipairs(doc.blocks) do
    if is_outline_block(block) then
      blocks:extend(nav)
    else
      blocks:insert(block)
    end
  end
  doc.blocks = blocks
  return doc
end

function Pandoc(doc)
  doc = strip_media_prefix(doc)
  local numbers = number_targets(doc)
  doc = resolve_crossrefs(doc, numbers)
  doc = render_callouts(doc)
  if is_html then
    doc = html_caption_labels(doc)
    doc = html_toc(doc)
  end
  return doc
end
